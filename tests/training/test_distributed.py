"""Data-parallel training with torch.distributed: two gloo processes on the CPU."""

import textwrap

import pytest
import safetensors.torch
import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, launch, train

SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        torch.manual_seed(0)
        net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])
        return net, x, y

    if __name__ == "__main__":
        environment, out = sys.argv[1], sys.argv[2]
        net, x, y = setup()
        options = TrainingOptions(
            solver="sgdm", initial_learn_rate=0.1, max_epochs=3, mini_batch_size=32,
            shuffle="every-epoch", seed=3, execution_environment=environment,
            verbose=os.environ.get("RANK", "0") == "0", verbose_frequency=3,
            validation_data=(x, y), validation_frequency=3, metrics=["accuracy"],
            output_network="last-iteration",
        )
        result = train(net, (x, y), "crossentropy", options)
        if os.environ.get("RANK", "0") == "0":
            safetensors.torch.save_file(
                {k: v.contiguous() for k, v in result.network.state_dict().items()}, out)
            print("FINAL", result.history.iterations[-1]["loss"], flush=True)
""")


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process(tmp_path, capfd):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    assert launch(script, 2, ["parallel", str(tmp_path / "ddp.safetensors")]) == 0
    out = capfd.readouterr().out
    assert out.count("Training on cpu") == 1  # only rank 0 prints
    namespace = {"__name__": "reference"}
    exec(SCRIPT, namespace)
    net, x, y = namespace["setup"]()
    options = TrainingOptions(
        solver="sgdm",
        initial_learn_rate=0.1,
        max_epochs=3,
        mini_batch_size=32,
        shuffle="every-epoch",
        seed=3,
        verbose=False,
    )
    reference = train(net, (x, y), "crossentropy", options).network.state_dict()
    parallel = safetensors.torch.load_file(tmp_path / "ddp.safetensors")
    for key, value in reference.items():
        assert torch.allclose(value, parallel[key], atol=1e-5), key
    untrained, _, _ = namespace["setup"]()
    assert not torch.allclose(untrained.layer("dense_1").weight, reference["layers.dense_1.weight"])


def test_parallel_without_a_launcher_explains_how_to_launch(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    net = Network([L.FeatureInput(2), L.Dense(1)])
    options = TrainingOptions(execution_environment="parallel", verbose=False)
    with pytest.raises(OptionError, match="deeptoolbox train --nproc N"):
        train(net, (torch.zeros(4, 2), torch.zeros(4, 1)), "mse", options)


def test_launch_checks_its_arguments(tmp_path):
    with pytest.raises(OptionError, match="`nproc`"):
        launch(tmp_path / "x.py", 0)
    with pytest.raises(OptionError, match="`script`"):
        launch(tmp_path / "missing.py", 2)
