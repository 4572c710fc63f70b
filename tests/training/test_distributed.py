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


LOADER_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from torch.utils.data import DataLoader, Dataset
    from deeptoolbox.training import TrainingOptions, train

    class Recorded(Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            with open(sys.argv[1] + f".rank{os.environ['RANK']}", "a") as f:
                f.write(f"{i}\\n")
            x = torch.full((2,), float(i) / 64)
            return x, torch.tensor(i % 2)

    if __name__ == "__main__":
        torch.manual_seed(0)
        net = torch.nn.Linear(2, 2)
        loader = DataLoader(Recorded(), batch_size=8, shuffle=True)
        options = TrainingOptions(max_epochs=1, execution_environment="parallel", verbose=False,
                                  seed=0)
        result = train(net, loader, "crossentropy", options)
        # one write per line: the two processes share stdout and print() writes in pieces
        sys.stdout.write(f"ITERATIONS {result.history.iterations[-1]['iteration']}\\n")
        sys.stdout.flush()
""")


@pytest.mark.slow
def test_two_processes_shard_a_users_dataloader(tmp_path, capfd):
    script = tmp_path / "loader_script.py"
    script.write_text(LOADER_SCRIPT)
    record = tmp_path / "reads"
    assert launch(script, 2, [str(record)]) == 0
    assert capfd.readouterr().out.count("ITERATIONS 4") == 2  # 32 samples, batches of 8, each
    reads = [set(map(int, (tmp_path / f"reads.rank{r}").read_text().split())) for r in (0, 1)]
    assert len(reads[0]) == len(reads[1]) == 32 and not reads[0] & reads[1]


def test_a_users_dataloader_is_sharded_keeping_its_settings():
    from torch.utils.data import DataLoader, TensorDataset

    from deeptoolbox.training._data import make_source

    x, y = torch.arange(20.0).reshape(10, 2), torch.arange(10)

    def collate(items):
        return torch.stack([a for a, _ in items]) * -1, torch.stack([b for _, b in items])

    loader = DataLoader(TensorDataset(x, y), batch_size=2, collate_fn=collate)
    parts = []
    for rank in (0, 1):
        source = make_source(loader, 1).configure(2, "never", 0, rank=rank, world=2)
        batches = [b for b, _ in source.epoch(0)]
        assert [b.size for b in batches] == [2, 2, 1] and source.payload.batch_size == 2
        assert all(bool((b.inputs[0] <= 0).all()) for b in batches)  # the user's collate_fn
        parts.append({int(t) for b in batches for t in b.target})
    assert parts[0] | parts[1] == set(range(10)) and not parts[0] & parts[1]


def test_data_that_cannot_be_sharded_is_refused_with_a_way_out():
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

    from deeptoolbox.training._data import make_source

    data = TensorDataset(torch.zeros(8, 2), torch.zeros(8))
    own = DataLoader(data, batch_sampler=BatchSampler(SequentialSampler(data), 4, False))
    for value, match in ((own, "its own batch_sampler"),
                         ([(torch.zeros(4, 2), torch.zeros(4))], "read whole by every process")):  # fmt: skip
        with pytest.raises(OptionError, match=match) as info:
            make_source(value, 1).configure(4, "never", 0, rank=0, world=2)
        assert "DistributedSampler" in str(info.value)


TWICE_SCRIPT = textwrap.dedent("""
    import os, sys, torch, torch.distributed as dist, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        y = (x[:, 0] - x[:, 2] > 0).long()
        torch.manual_seed(0)
        return Network([L.FeatureInput(3), L.Dense(8), L.ReLU(), L.Dense(2), L.Softmax()]), x, y

    def twice(environment):
        net, x, y = setup()
        groups = []
        for epochs, rate in ((2, 0.1), (1, 0.05)):  # two calls, the second goes on training
            options = TrainingOptions(solver="sgdm", initial_learn_rate=rate, max_epochs=epochs,
                                      mini_batch_size=16, shuffle="every-epoch", seed=epochs,
                                      verbose=False, execution_environment=environment,
                                      output_network="last-iteration")
            net = train(net, (x, y), "crossentropy", options).network
            groups.append(dist.group.WORLD if dist.is_initialized() else None)
        return net, groups

    if __name__ == "__main__":
        mode, out = sys.argv[1:3]
        if mode == "user":  # the user's own group: used, not destroyed
            dist.init_process_group("gloo")
            mine = dist.group.WORLD
        net, groups = twice("parallel")
        assert groups[0] is not None and groups[0] is groups[1], groups  # kept, reused
        if mode == "user":
            assert groups[0] is mine
        total = torch.ones(1)
        dist.all_reduce(total)  # the group still works after train()
        assert total.item() == 2
        if mode == "user":
            dist.destroy_process_group()
        safetensors.torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                                    f"{out}.{mode}.rank{os.environ['RANK']}")
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ours", "user"])
def test_two_train_calls_in_one_script_share_the_process_group(tmp_path, mode):
    script = tmp_path / "twice_script.py"
    script.write_text(TWICE_SCRIPT)
    assert launch(script, 2, [mode, str(tmp_path / "net")]) == 0
    namespace = {"__name__": "reference"}
    exec(TWICE_SCRIPT, namespace)
    reference, _ = namespace["twice"]("cpu")
    untrained, _, _ = namespace["setup"]()
    for rank in (0, 1):
        weights = safetensors.torch.load_file(tmp_path / f"net.{mode}.rank{rank}")
        for key, value in reference.state_dict().items():
            assert torch.allclose(value, weights[key], atol=1e-5), (rank, key)
    moved = untrained.state_dict()["layers.dense_1.weight"]
    assert not torch.allclose(moved, reference.state_dict()["layers.dense_1.weight"])


ITERABLE_VALIDATION_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup():
        g = torch.Generator().manual_seed(1)
        x, xv = torch.randn(64, 3, generator=g), torch.randn(42, 3, generator=g)
        y, yv = (x[:, 0] > x[:, 1]).long(), (xv[:, 0] > 0).long()  # validation: another rule
        torch.manual_seed(0)
        return Network([L.FeatureInput(3), L.Dense(8), L.ReLU(), L.Dense(2), L.Softmax()]), \\
            (x, y), (xv, yv)

    def options(validation, environment):
        return TrainingOptions(solver="sgdm", initial_learn_rate=0.2, max_epochs=2,
                               mini_batch_size=16, seed=2, verbose=False, metrics=["accuracy"],
                               validation_data=validation, validation_frequency=2,
                               execution_environment=environment,
                               output_network="last-iteration")

    if __name__ == "__main__":
        net, data, (xv, yv) = setup()
        rank = int(os.environ["RANK"])
        # a plain list of batches, a different part on each process: 3 batches of 10 on
        # process 0, one of 12 on process 1
        parts = [[(xv[i:i + 10], yv[i:i + 10]) for i in (0, 10, 20)], [(xv[30:], yv[30:])]]
        result = train(net, data, "crossentropy", options(parts[rank], "parallel"))
        with open(f"{sys.argv[1]}.rank{rank}", "w") as f:
            f.write(f"{result.final_validation['loss']!r} {result.final_validation['accuracy']!r}")
""")


@pytest.mark.slow
def test_validation_on_a_plain_iterable_is_reduced_over_the_processes(tmp_path):
    script = tmp_path / "iterable_validation.py"
    script.write_text(ITERABLE_VALIDATION_SCRIPT)
    assert launch(script, 2, [str(tmp_path / "values")]) == 0
    reported = [tuple(map(float, (tmp_path / f"values.rank{r}").read_text().split()))
                for r in (0, 1)]  # fmt: skip
    namespace = {"__name__": "reference"}
    exec(ITERABLE_VALIDATION_SCRIPT, namespace)
    net, data, validation = namespace["setup"]()
    # one process, the whole validation set (the training matches the 2-process one)
    result = train(net, data, "crossentropy", namespace["options"](validation, "cpu"))
    loss, accuracy = result.final_validation["loss"], result.final_validation["accuracy"]
    for rank in (0, 1):
        assert reported[rank][0] == pytest.approx(loss, rel=1e-5), rank
        assert reported[rank][1] == pytest.approx(accuracy, abs=1e-9), rank
    with torch.no_grad():  # and it is the value over the 42 observations, not over a part
        x, y = validation
        assert accuracy == pytest.approx((net(x).argmax(1) == y).float().mean().item())


LBFGS_SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup(environment="cpu"):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] - x[:, 2] > 0).long()
        y[1::2] = (x[1::2, 1] > 0).long()  # the processes take alternate samples: their
        # halves follow different rules, so a step that lowers the mean loss can raise one's
        torch.manual_seed(0)
        net = Network([L.FeatureInput(4), L.Dense(8), L.Tanh(), L.Dense(2), L.Softmax()])
        options = TrainingOptions(solver="lbfgs", max_epochs=1, mini_batch_size=64,
                                  shuffle="never", verbose=False,
                                  execution_environment=environment)
        return net, x, y, options

    if __name__ == "__main__":
        net, x, y, options = setup("parallel")
        result = train(net, (x, y), "crossentropy", options)
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in result.network.state_dict().items()},
            f"{sys.argv[1]}/rank{os.environ['RANK']}.safetensors")
""")


@pytest.mark.slow
def test_lbfgs_under_ddp_takes_the_same_steps_on_every_process(tmp_path):
    # each process reads the mean loss in L-BFGS's line search, so both take the same steps;
    # with its own half's loss, one process's line search made calls its peer did not and the
    # run aborted
    script = tmp_path / "lbfgs_script.py"
    script.write_text(LBFGS_SCRIPT)
    assert launch(script, 2, [str(tmp_path)]) == 0
    namespace = {"__name__": "reference"}
    exec(LBFGS_SCRIPT, namespace)
    net, x, y, options = namespace["setup"]()
    reference = train(net, (x, y), "crossentropy", options).network.state_dict()
    ranks = [safetensors.torch.load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for key, value in reference.items():
        torch.testing.assert_close(ranks[0][key], ranks[1][key], rtol=0, atol=0)
        # the same objective as one process on the whole batch; the line search's decisions
        # amplify the sums' rounding (mean of halves vs mean of all), hence the tolerance
        torch.testing.assert_close(ranks[0][key], value, rtol=2e-2, atol=2e-2)
