"""Fast device defaults: the decision rules (with made-up device facts, on any machine), the
options that override them, the first progress line, and (marked, CUDA only) the real runs."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, train
from deeptoolbox.training._acceleration import (
    COMPILE_MIN_ITERATIONS,
    MAX_AUTO_WORKERS,
    Acceleration,
    DeviceFacts,
    applied,
    choose_acceleration,
)

H100 = DeviceFacts("cuda", bf16=True, cpu_count=32, local_processes=1, can_compile=True)
T4 = DeviceFacts("cuda", bf16=False, cpu_count=8, local_processes=1, can_compile=True)
LAPTOP = DeviceFacts("cpu", cpu_count=8)


def choose(facts, image=True, iterations=10_000, lbfgs=False, **options):
    return choose_acceleration(
        TrainingOptions(**options), facts, image_network=image, iterations=iterations, lbfgs=lbfgs
    )


def test_cuda_defaults_are_the_fast_ones():
    choice = choose(H100)
    assert choice == Acceleration(precision="bf16-mixed", channels_last=True, compile=True,
                                  cudnn_benchmark=True, tf32=True, pin_memory=True,
                                  num_workers=MAX_AUTO_WORKERS)  # fmt: skip
    assert choice.describe() == "bf16-mixed, channels_last, compiled"


def test_a_gpu_without_bfloat16_gets_float16_with_a_grad_scaler():
    choice = choose(T4)
    assert choice.precision == "16-mixed"
    assert choice.describe() == "fp16-mixed + GradScaler, channels_last, compiled"
    assert choice.num_workers == 7  # 8 CPUs, one left for the training process


def test_cpu_defaults_are_what_train_always_did():
    choice = choose(LAPTOP)
    assert choice == Acceleration("32", False, False, None, None, False, 0)  # None: untouched
    assert choice.describe() == "float32"
    mps = choose(DeviceFacts("mps", cpu_count=10))
    assert (mps.precision, mps.channels_last, mps.compile, mps.num_workers) == (
        "32",
        False,
        False,
        0,
    )


def test_channels_last_only_for_image_networks():
    assert not choose(H100, image=False).channels_last
    assert choose(H100, image=False, memory_format="channels_last").channels_last
    assert not choose(H100, memory_format="contiguous").channels_last


@pytest.mark.parametrize(
    ("facts", "iterations", "lbfgs", "expected"),
    [
        (H100, COMPILE_MIN_ITERATIONS, False, True),
        (H100, COMPILE_MIN_ITERATIONS - 1, False, False),  # too short to repay compiling
        (H100, None, False, False),  # length unknown (an iterable of batches)
        (H100, 10**6, True, False),  # L-BFGS steps through a closure
        (DeviceFacts("cuda", bf16=True, cpu_count=4), 10**6, False, False),  # no Triton
        (LAPTOP, 10**6, False, False),  # "auto" never compiles on the CPU
    ],
)
def test_the_compile_rule(facts, iterations, lbfgs, expected):
    assert choose(facts, iterations=iterations, lbfgs=lbfgs).compile is expected


def test_explicit_compile_wins_both_ways():
    assert choose(LAPTOP, compile=True).compile
    assert not choose(H100, compile=False).compile


def test_workers_share_the_cpus_between_the_processes_of_a_machine():
    eight_gpus = DeviceFacts("cuda", bf16=True, cpu_count=64, local_processes=8)
    assert choose(eight_gpus).num_workers == 64 // 8 - 1
    assert choose(DeviceFacts("cuda", bf16=True, cpu_count=2, local_processes=2)).num_workers == 0
    assert choose(H100, num_workers=3).num_workers == 3
    assert choose(LAPTOP, num_workers=2).num_workers == 2


def test_every_switch_can_be_turned_off_or_on():
    off = choose(H100, precision="32", memory_format="contiguous", compile=False,
                 cudnn_benchmark=False, tf32=False, pin_memory=False, num_workers=0)  # fmt: skip
    assert off == Acceleration("32", False, False, False, False, False, 0)
    on = choose(LAPTOP, precision="bf16-mixed", cudnn_benchmark=True, tf32=True)
    assert (on.precision, on.cudnn_benchmark, on.tf32) == ("bf16-mixed", True, True)


def test_impossible_precisions_are_refused_with_what_to_use():
    with pytest.raises(OptionError, match="'16-mixed' needs a GPU"):
        choose(LAPTOP, precision="16-mixed")
    with pytest.raises(OptionError, match=r"bfloat16.*Use 'auto' or '16-mixed'"):
        choose(T4, precision="bf16-mixed")


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("compile", "yes", "'auto', True or False"),
        ("cudnn_benchmark", 1, "'auto', True or False"),
        ("tf32", None, "'auto', True or False"),
        ("pin_memory", "on", "'auto', True or False"),
        ("memory_format", "nhwc", "one of 'auto', 'channels_last', 'contiguous'"),
        ("num_workers", "many", "'auto' or an int >= 0"),
        ("num_workers", -1, "'auto' or an int >= 0"),
    ],
)
def test_bad_values_name_the_option_and_what_is_allowed(option, value, allowed):
    with pytest.raises(OptionError) as info:
        TrainingOptions(**{option: value})
    message = str(info.value)
    assert f"`{option}` must be {allowed}" in message and f"{option}={value!r}" in message


def test_applied_sets_the_backend_switches_and_puts_them_back():
    before = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision(),
              torch.backends.cudnn.allow_tf32)  # fmt: skip
    with applied(Acceleration("32", False, False, True, False, False, 0)):
        assert torch.backends.cudnn.benchmark
        assert torch.get_float32_matmul_precision() == "highest"
        assert not torch.backends.cudnn.allow_tf32
    with (
        pytest.raises(RuntimeError),
        applied(Acceleration("32", False, False, True, True, False, 0)),
    ):
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("inside")
    after = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision(),
             torch.backends.cudnn.allow_tf32)  # fmt: skip
    assert after == before


def image_net():
    torch.manual_seed(0)
    return Network([
        L.ImageInput((1, 8, 8)), L.Conv2d(8, 3, padding="same", name="conv"), L.ReLU(),
        L.Flatten(), L.Dense(2), L.Softmax(),
    ])  # fmt: skip


def image_data(count=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(count, 1, 8, 8, generator=g)
    return x, (x.mean((1, 2, 3)) > 0).long()


def test_cpu_run_keeps_cpu_behaviour_and_says_so(capsys):
    net = image_net()
    result = train(net, image_data(), "crossentropy",
                   TrainingOptions(max_epochs=1, mini_batch_size=32, execution_environment="cpu"))  # fmt: skip
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "Training on cpu (float32)."
    assert result.precision == "32"
    assert net.layer("conv").weight.is_contiguous()  # not channels_last on the CPU


def test_a_cpu_run_leaves_the_callers_matmul_precision_alone():
    before = torch.get_float32_matmul_precision()
    seen = []
    try:
        torch.set_float32_matmul_precision("medium")
        net = image_net()
        net.layer("conv").register_forward_hook(
            lambda *a: seen.append(torch.get_float32_matmul_precision())
        )
        train(net, image_data(), "crossentropy", TrainingOptions(
            max_epochs=1, mini_batch_size=32, execution_environment="cpu", verbose=False))  # fmt: skip
        assert seen[0] == "medium" and torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


def test_cpu_run_with_overrides_says_what_it_does(capsys):
    net = image_net()
    options = TrainingOptions(max_epochs=1, mini_batch_size=32, execution_environment="cpu",
                              precision="bf16-mixed", memory_format="channels_last")  # fmt: skip
    train(net, image_data(), "crossentropy", options)
    assert capsys.readouterr().out.splitlines()[0] == (
        "Training on cpu (bf16-mixed, channels_last)."
    )
    assert net.layer("conv").weight.is_contiguous(memory_format=torch.channels_last)


# -- on a CUDA GPU ---------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_defaults_pick_bf16_and_channels_last_and_really_run_bf16(capsys):
    net = image_net()
    seen = []
    net.layer("conv").register_forward_hook(
        lambda module, inputs, output: seen.append(
            (output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last))
        )
    )
    result = train(
        net, image_data(), "crossentropy", TrainingOptions(max_epochs=1, mini_batch_size=32)
    )
    assert result.precision == "bf16-mixed" and result.device.startswith("cuda")
    assert seen and all(s == (torch.bfloat16, True) for s in seen[:2])  # training batches
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .startswith("Training on cuda (bf16-mixed, channels_last")
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_compile_really_compiles():
    import torch._dynamo

    torch._dynamo.reset()
    from torch._dynamo.utils import counters

    counters.clear()
    train(image_net(), image_data(), "crossentropy",
          TrainingOptions(max_epochs=1, mini_batch_size=32, compile=True, verbose=False))  # fmt: skip
    assert counters["stats"]["unique_graphs"] >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_float16_uses_a_grad_scaler(monkeypatch):
    scales = []
    update = torch.amp.GradScaler.update

    def recording(self, *args, **kwargs):
        scales.append((self.is_enabled(), self.get_scale()))
        return update(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "update", recording)
    seen = []
    net = image_net()
    net.layer("conv").register_forward_hook(lambda m, i, output: seen.append(output.dtype))
    train(net, image_data(), "crossentropy",
          TrainingOptions(max_epochs=1, mini_batch_size=32, precision="16-mixed", verbose=False))  # fmt: skip
    assert scales and all(enabled and scale > 1 for enabled, scale in scales)
    assert seen[0] == torch.float16
