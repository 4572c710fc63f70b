"""Sharded training (strategy="fsdp", FSDP2) with two gloo processes on the CPU: same weights
as one process, parameters really sharded, sharded checkpoints resumed on 1 and 2 processes."""

import json
import textwrap

import pytest
import safetensors.torch
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, launch, train
from deeptoolbox.training._checkpoint import load_checkpoint
from deeptoolbox.training._sharding import precision_policy, wrap_plan

SCRIPT = textwrap.dedent("""
    import json, os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train
    from deeptoolbox.training._sharding import local_fraction

    def setup():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        torch.manual_seed(0)
        net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(2), L.Softmax()])
        return net, x, y

    def options(**kw):
        return TrainingOptions(solver="sgdm", initial_learn_rate=0.1, mini_batch_size=32,
                               shuffle="every-epoch", seed=3, output_network="last-iteration",
                               verbose=False, **kw)

    class Probe:  # the share of the parameters this process holds while it trains
        def __init__(self, net):
            self.net, self.fraction = net, None

        def on_train_start(self, state):
            self.fraction = local_fraction(self.net)

    if __name__ == "__main__":
        out, epochs, checkpoints, resume = sys.argv[1:5]
        net, x, y = setup()
        rank = int(os.environ["RANK"])
        probe = Probe(net)
        result = train(net, (x, y), "crossentropy", options(
            max_epochs=int(epochs), execution_environment="parallel", strategy="fsdp",
            checkpoint_path=None if checkpoints == "-" else checkpoints,
            resume_from=None if resume == "-" else resume, callbacks=[probe],
            validation_data=(x[:70], y[:70]), validation_frequency=3, metrics=["accuracy"]))
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in result.network.state_dict().items()},
            f"{out}.rank{rank}")
        with open(f"{out}.rank{rank}.json", "w") as f:
            json.dump({"fraction": probe.fraction, "type": type(result.network).__name__,
                       "validation": result.final_validation,
                       "sharded": any(type(p).__name__ == "DTensor"
                                      for p in result.network.parameters())}, f)
""")


def _run(tmp_path, nproc, name, epochs, checkpoints="-", resume="-"):
    script = tmp_path / "fsdp_script.py"
    script.write_text(SCRIPT)
    out = tmp_path / name
    assert launch(script, nproc, [str(out), str(epochs), str(checkpoints), str(resume)]) == 0
    weights = [safetensors.torch.load_file(f"{out}.rank{r}") for r in range(nproc)]
    facts = [json.loads((tmp_path / f"{name}.rank{r}.json").read_text()) for r in range(nproc)]
    return weights, facts


def _reference(tmp_path, epochs):
    namespace = {"__name__": "reference"}
    exec(SCRIPT, namespace)
    net, x, y = namespace["setup"]()
    options = namespace["options"](
        max_epochs=epochs,
        validation_data=(x[:70], y[:70]),
        validation_frequency=3,
        metrics=["accuracy"],
    )
    result = train(net, (x, y), "crossentropy", options)
    return result, namespace["setup"]()[0]


def _close(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.allclose(value, b[key], atol=atol), key


@pytest.mark.slow
def test_two_process_fsdp_matches_one_process_and_shards_the_parameters(tmp_path):
    weights, facts = _run(tmp_path, 2, "fsdp", 3)
    result, untrained = _reference(tmp_path, 3)
    reference = result.network.state_dict()
    for rank in (0, 1):  # every process returns the full, unsharded network
        _close(reference, weights[rank])
        assert facts[rank]["type"] == "Network" and not facts[rank]["sharded"]
        # (4*16 + 16 + 16*2 + 2) = 114 parameters: 57 on each process
        assert facts[rank]["fraction"] == pytest.approx(0.5)
        # every process validates every batch (each forward gathers the shards)
        for name, value in result.final_validation.items():
            assert facts[rank]["validation"][name] == pytest.approx(value, abs=1e-5), name
    assert not torch.allclose(untrained.layer("dense_1").weight, reference["layers.dense_1.weight"])


@pytest.mark.slow
def test_a_sharded_checkpoint_resumes_on_one_and_on_two_processes(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    full, _ = _run(tmp_path, 2, "full", 4, checkpoints)
    written = sorted(p.name for p in checkpoints.iterdir())
    assert written == [f"checkpoint-epoch000{e}-iteration00000{3 * e:02d}" for e in (1, 2, 3, 4)]
    middle = checkpoints / written[1]
    assert (middle / ".metadata").is_file() and (middle / "state.pt").is_file()
    assert len(list(middle.glob("*.distcp"))) == 2  # one shard file per process
    whole = load_checkpoint(checkpoints)  # the newest, gathered into full tensors
    assert whole["path"].name == written[-1] and whole["state"]["iteration"] == 12
    _close(full[0], whole["weights"], atol=0)
    assert Network.from_json(whole["network_json"]).layer_names == ["featureinput_1", "dense_1",
        "relu_1", "dense_2", "softmax_1"]  # fmt: skip
    on_two, _ = _run(tmp_path, 2, "two", 4, resume=middle)
    on_one, facts = _run(tmp_path, 1, "one", 4, resume=middle)
    _close(full[0], on_two[0], atol=1e-6)
    _close(full[0], on_one[0], atol=1e-5)
    assert facts[0]["fraction"] == 1.0
    # a single process without a launcher (not sharded) resumes from it too
    namespace = {"__name__": "reference"}
    exec(SCRIPT, namespace)
    net, x, y = namespace["setup"]()
    options = namespace["options"](max_epochs=4, strategy="fsdp", resume_from=middle)
    _close(full[0], train(net, (x, y), "crossentropy", options).network.state_dict())


def test_fsdp_on_one_process_trains_unsharded_and_says_so(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, generator=g), torch.randint(0, 2, (32,), generator=g)

    def run(strategy, **kw):
        torch.manual_seed(0)
        net = Network([L.FeatureInput(3), L.Dense(4), L.Dense(2), L.Softmax()])
        options = TrainingOptions(
            max_epochs=2,
            mini_batch_size=8,
            seed=1,
            strategy=strategy,
            execution_environment="cpu",
            verbose_frequency=100,
            **kw,
        )
        return train(net, (x, y), "crossentropy", options).network.state_dict()

    sharded = run("fsdp", checkpoint_path=tmp_path)
    assert "this run is one process, so the network is not sharded" in capsys.readouterr().out
    _close(run("ddp", verbose=False), sharded, atol=0)
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == "checkpoint-epoch0002-iteration0000008"


def test_strategy_values_are_checked():
    with pytest.raises(OptionError, match=r"`strategy` must be one of 'auto', 'ddp', 'fsdp'"):
        TrainingOptions(strategy="zero3")
    net = Network([L.FeatureInput(2), L.Dense(2)])
    options = TrainingOptions(strategy="fsdp", verbose=False, max_epochs=1)
    with pytest.raises(OptionError, match="cannot take a ready-made `optimizer`"):
        train(
            net,
            (torch.zeros(4, 2), torch.zeros(4, 2)),
            "mse",
            options,
            optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        )


def test_lbfgs_with_fsdp_is_refused_naming_both_options():
    with pytest.raises(OptionError, match=r"`solver`='lbfgs' cannot run with `strategy`='fsdp'"):
        TrainingOptions(solver="lbfgs", strategy="fsdp")
    with pytest.raises(OptionError, match=r"Received: solver='lbfgs', strategy='fsdp'"):
        TrainingOptions(strategy="fsdp", solver="lbfgs", execution_environment="cpu")
    assert TrainingOptions(solver="lbfgs", strategy="ddp").solver == "lbfgs"
    assert TrainingOptions(solver="adam", strategy="fsdp").strategy == "fsdp"


def test_the_wrap_plan_follows_the_network_graph():
    net = Network(
        [L.FeatureInput(8), L.Dense(256), L.BatchNorm(), L.ReLU(), L.Dense(256), L.Dense(1)]
    )
    sizes = {n: sum(p.numel() for p in net.layer(n).parameters()) for n in net.layer_names}
    total = sum(sizes.values())  # 2,304 + 512 + 65,792 + 257
    assert sizes["batchnorm_1"] / total < 0.01 and sizes["dense_3"] / total < 0.01
    assert wrap_plan(net) == ["layers.dense_1", "layers.dense_2"]  # at least 1% each
    assert wrap_plan(net, min_fraction=0.001) == [
        "layers.dense_1",
        "layers.batchnorm_1",
        "layers.dense_2",
        "layers.dense_3",
    ]
    blocks = torch.nn.Sequential(
        torch.nn.Linear(4, 4),
        torch.nn.Sequential(*[torch.nn.TransformerEncoderLayer(8, 2, 16) for _ in range(3)]),
    )
    assert wrap_plan(blocks) == ["1.0", "1.1", "1.2"]  # the repeated blocks
    assert wrap_plan(torch.nn.Linear(2, 2)) == []  # one module: the root unit only


def test_mixed_precision_policy_follows_precision():
    assert precision_policy("bf16-mixed").param_dtype == torch.bfloat16
    assert precision_policy("16-mixed").param_dtype == torch.float16
    assert precision_policy("16-mixed").reduce_dtype == torch.float32
    assert precision_policy("32").param_dtype is None


NAN_SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.errors import TrainingError
    from deeptoolbox.training import TrainingOptions, train

    def run(**kw):
        torch.manual_seed(0)
        x = torch.randn(128, 3)
        y = (x[:, 0] > 0).long()
        x[33] = float("nan")  # batch 2 (32 per batch); odd: process 1's half of it
        net = Network([L.FeatureInput(3), L.Dense(8), L.Dense(2), L.Softmax()])
        options = TrainingOptions(max_epochs=5, mini_batch_size=32, shuffle="never",
                                  verbose=False, verbose_frequency=1, strategy="fsdp", **kw)
        try:
            train(net, (x, y), "crossentropy", options)
        except TrainingError as err:
            return err

    if __name__ == "__main__":
        err = run(execution_environment="parallel")
        rank = os.environ["RANK"]
        with open(sys.argv[1] + f".rank{rank}", "w") as f:
            f.write(str(err))
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in err.result.network.state_dict().items()},
            sys.argv[1] + f".rank{rank}.safetensors")
""")


@pytest.mark.slow
def test_a_nan_under_fsdp_rolls_every_shard_back_to_the_last_checked_network(tmp_path):
    script = tmp_path / "nan_script.py"
    script.write_text(NAN_SCRIPT)
    assert launch(script, 2, [str(tmp_path / "error")]) == 0
    namespace = {"__name__": "reference"}
    exec(NAN_SCRIPT, namespace)
    alone = namespace["run"](execution_environment="cpu")  # one process, unsharded
    assert "the network of iteration 1, the last one checked" in str(alone)
    reference = alone.result.network.state_dict()
    for rank in (0, 1):
        message = (tmp_path / f"error.rank{rank}").read_text()
        assert "the loss became nan at iteration 2 (epoch 1) in process 1 of 2" in message
        assert "the network of iteration 1, the last one checked" in message
        weights = safetensors.torch.load_file(tmp_path / f"error.rank{rank}.safetensors")
        _close(reference, weights, atol=1e-6)  # the full network of iteration 1, finite


BN_SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    if __name__ == "__main__":
        strategy, out = sys.argv[1:3]
        g = torch.Generator().manual_seed(0)
        x = torch.randn(100, 4, generator=g)  # 100: the last batch is short (4, 2 a process)
        y = (x[:, 0] + x[:, 1] > 0).long()
        torch.manual_seed(0)
        net = Network([L.FeatureInput(4), L.Dense(16), L.BatchNorm(), L.ReLU(), L.Dense(2),
                       L.Softmax()])
        options = TrainingOptions(solver="sgdm", initial_learn_rate=0.1, max_epochs=3,
                                  mini_batch_size=32, shuffle="every-epoch", seed=3,
                                  verbose=False, strategy=strategy,
                                  execution_environment="parallel",
                                  output_network="last-iteration")
        result = train(net, (x, y), "crossentropy", options)
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in result.network.state_dict().items()},
            f"{out}.rank{os.environ['RANK']}")
""")


@pytest.mark.slow
def test_fsdp_with_batch_norm_and_population_statistics_matches_ddp(tmp_path):
    # batch norm normalizes with each process's half of the batch, under DDP as under FSDP,
    # so the reference here is DDP on the same 2 processes; the population-statistics pass
    # after training (forwards on every process: collectives under FSDP) must not hang
    script = tmp_path / "bn_script.py"
    script.write_text(BN_SCRIPT)
    weights = {}
    for strategy in ("ddp", "fsdp"):
        assert launch(script, 2, [strategy, str(tmp_path / strategy)]) == 0
        weights[strategy] = safetensors.torch.load_file(tmp_path / f"{strategy}.rank0")
    _close(weights["ddp"], weights["fsdp"], atol=1e-6)
    variance = weights["fsdp"]["layers.batchnorm_1.running_var"]
    assert not torch.allclose(variance, torch.ones_like(variance))  # set from the data


MODULE_SCRIPT = textwrap.dedent("""
    import os, sys, torch, safetensors.torch
    from deeptoolbox.training import TrainingOptions, train

    def run(environment):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        y = (x[:, 0] + x[:, 1] > 0).long()
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                  torch.nn.ReLU(), torch.nn.Linear(16, 2))
        options = TrainingOptions(solver="adam", max_epochs=3, mini_batch_size=32, seed=3,
                                  shuffle="every-epoch", verbose=False, strategy="fsdp",
                                  execution_environment=environment,
                                  output_network="last-iteration")
        return train(net, (x, y), "crossentropy", options).network

    if __name__ == "__main__":
        net = run("parallel")
        assert type(net) is torch.nn.Sequential, type(net)  # plain again, not an FSDP class
        safetensors.torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                                    f"{sys.argv[1]}.rank{os.environ['RANK']}")
""")


@pytest.mark.slow
def test_fsdp_trains_a_plain_torch_module_with_adam_like_one_process(tmp_path):
    script = tmp_path / "module_script.py"
    script.write_text(MODULE_SCRIPT)
    assert launch(script, 2, [str(tmp_path / "module")]) == 0
    namespace = {"__name__": "reference"}
    exec(MODULE_SCRIPT, namespace)
    reference = namespace["run"]("cpu").state_dict()
    for rank in (0, 1):
        _close(reference, safetensors.torch.load_file(tmp_path / f"module.rank{rank}"))
