"""TrainingOptions(callbacks=[...]): order of calls, info, stop requests, errors, monitor."""

import json

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import Callback, TrainingOptions, TrainingProgressMonitor, train
from deeptoolbox.training._callbacks import Callbacks


def data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long()


def fresh():
    torch.manual_seed(0)
    return Network([L.FeatureInput(2), L.Dense(8), L.ReLU(), L.Dense(2), L.Softmax()])


def options(**kw):
    base = dict(verbose=False, seed=0, solver="adam", initial_learn_rate=0.05, max_epochs=2,
                mini_batch_size=16, verbose_frequency=2)  # fmt: skip
    return TrainingOptions(**{**base, **kw})


class Recorder:
    def __init__(self):
        self.calls, self.infos, self.iterations, self.epochs = [], [], [], []

    def on_train_start(self, state):
        self.calls.append(("on_train_start", state.iteration))

    def on_batch_start(self, state, inputs, targets):
        self.calls.append(("on_batch_start", state.iteration))

    def on_iteration_end(self, state, info):
        self.calls.append(("on_iteration_end", state.iteration))
        self.infos.append(info)
        self.iterations.append(info)

    def on_validation_end(self, state, info):
        self.calls.append(("on_validation_end", state.iteration))

    def on_epoch_end(self, state, info):
        self.calls.append(("on_epoch_end", state.epoch))
        self.infos.append(info)
        self.epochs.append(info)

    def on_train_end(self, result):
        self.calls.append(("on_train_end", result.history.iterations[-1]["iteration"]))


def test_hooks_are_called_in_order():
    recorder = Recorder()
    train(
        fresh(),
        data(),
        "crossentropy",
        options(validation_data=data(16, 1), validation_frequency=4, callbacks=[recorder]),
    )
    expected = [("on_train_start", 0)]
    for iteration in range(1, 7):  # 3 batches per epoch, 2 epochs
        # on_batch_start comes once the iteration is counted, before its forward pass
        expected.append(("on_batch_start", iteration))
        if iteration in (1, 4, 6):  # validated: the first, every 4th, the last
            expected.append(("on_validation_end", iteration))
        expected.append(("on_iteration_end", iteration))
        if iteration % 3 == 0:
            expected.append(("on_epoch_end", iteration // 3))
    expected.append(("on_train_end", 6))
    assert recorder.calls == expected


def test_info_is_plain_json_with_the_monitor_fields():
    recorder = Recorder()
    result = train(fresh(), data(), "crossentropy",
                   options(validation_data=data(16, 1), validation_frequency=4,
                           metrics=["accuracy"], callbacks=[recorder]))  # fmt: skip
    json.loads(json.dumps(recorder.infos, allow_nan=False))  # plain values only
    first, second = recorder.iterations[0], recorder.iterations[1]
    assert set(first) == {"iteration", "epoch", "iteration_in_epoch", "iterations_per_epoch",
                          "total_iterations", "max_epochs", "logged", "loss", "learn_rate",
                          "metrics", "validation", "best", "elapsed", "remaining", "device",
                          "precision", "setup"}  # fmt: skip
    assert first["setup"].startswith("float32")  # the acceleration in words (cpu: float32)
    assert (first["iteration"], first["epoch"], first["iteration_in_epoch"]) == (1, 1, 1)
    assert (first["iterations_per_epoch"], first["total_iterations"]) == (3, 6)
    assert first["logged"] and first["loss"] == result.history.iterations[0]["loss"]
    assert first["validation"]["loss"] == result.history.iterations[0]["validation_loss"]
    assert first["metrics"] == {"accuracy": result.history.iterations[0]["accuracy"]}
    assert first["best"] is True and first["learn_rate"] == 0.05
    assert second["logged"] and second["validation"] is None  # every 2nd is logged
    assert not recorder.iterations[2]["logged"] and recorder.iterations[2]["loss"] is None
    assert first["device"] == "cpu" and first["precision"] == "32"
    assert first["remaining"] > 0 and recorder.iterations[-1]["remaining"] == 0
    assert [e["epoch"] for e in recorder.epochs] == [1, 2]
    assert [e["loss"] for e in recorder.epochs] == result.history.column("loss", "epoch")
    assert recorder.epochs[1]["validation"]["loss"] == result.history.column("validation_loss")[-1]


def test_info_loss_is_read_only_at_logged_iterations():
    recorder = Recorder()
    result = train(
        fresh(), data(), "crossentropy", options(verbose_frequency=4, callbacks=[recorder])
    )
    logged = [i["iteration"] for i in recorder.iterations if i["logged"]]
    assert logged == [1, 4, 6]  # the first, every 4th, the last
    losses = {r["iteration"]: r["loss"] for r in result.history.iterations}
    for info in recorder.iterations:
        if info["logged"]:
            assert info["loss"] == losses[info["iteration"]]


class StopAt:
    def __init__(self, iteration, hook="on_iteration_end"):
        self.iteration = iteration
        setattr(self, hook, self.check)

    def check(self, state, info):
        return state.iteration >= self.iteration


def test_returning_true_stops_training_cleanly_and_keeps_the_network():
    seen = {}

    class Keep:
        def __init__(self, net):
            self.net = net

        def on_iteration_end(self, state, info):
            seen[state.iteration] = {k: v.clone() for k, v in self.net.state_dict().items()}

    net = fresh()
    result = train(net, data(), "crossentropy",
                   options(max_epochs=5, callbacks=[Keep(net), StopAt(4)]))  # fmt: skip
    assert result.stop_reason == "stopped by callback StopAt (on_iteration_end)"
    assert result.history.column("iteration") == [1, 2, 3, 4]
    assert result.returned_iteration == 4
    assert len(result.history.epochs) == 2  # epoch 1, and the partial epoch 2
    for key, value in seen[4].items():
        assert torch.equal(result.network.state_dict()[key], value), key


@pytest.mark.parametrize("hook,iterations", [("on_epoch_end", 3), ("on_validation_end", 1)])
def test_epoch_and_validation_hooks_can_stop_too(hook, iterations):
    result = train(fresh(), data(), "crossentropy",
                   options(max_epochs=5, validation_data=data(16, 1), validation_frequency=4,
                           callbacks=[StopAt(1, hook)]))  # fmt: skip
    assert result.stop_reason == f"stopped by callback StopAt ({hook})"
    assert result.history.column("iteration")[-1] == iterations


def test_an_exception_in_a_callback_names_the_callback_and_the_hook():
    class Boom:
        def on_iteration_end(self, state, info):
            if state.iteration == 3:
                raise ValueError("no more")

    with pytest.raises(ValueError, match="no more") as caught:
        train(fresh(), data(), "crossentropy", options(callbacks=[Boom()]))
    assert "(raised in the train() callback Boom.on_iteration_end)" in caught.value.__notes__


def test_objects_without_hooks_are_refused_when_the_options_are_built():
    with pytest.raises(OptionError, match="`callbacks` must be objects with one or more"):
        TrainingOptions(callbacks=[print])
    with pytest.raises(OptionError, match="a list of callback objects"):
        TrainingOptions(callbacks=Recorder())


def test_on_batch_start_can_replace_the_inputs():
    class Erase:
        def on_batch_start(self, state, inputs, targets):
            return [torch.zeros_like(inputs[0])]

    x, y = data(96)
    result = train(fresh(), (x, y), "crossentropy", options(max_epochs=10, callbacks=[Erase()]))
    accuracy = (result.network(x).argmax(1) == y).float().mean()
    assert accuracy < 0.75  # it learned from erased inputs only


def test_a_progress_monitor_is_a_callback_and_can_stop_training(tmp_path):
    monitor = TrainingProgressMonitor(metrics=["loss", "validation_loss", "accuracy"],
                                      info=["epoch", "learn_rate"], path=tmp_path / "m.png",
                                      refresh_seconds=1e9)  # fmt: skip

    class StopMonitor:
        def on_iteration_end(self, state, info):
            monitor.stop = state.iteration >= 5

    result = train(fresh(), data(), "crossentropy",
                   options(max_epochs=4, validation_data=data(16, 1), validation_frequency=2,
                           metrics=["accuracy"], callbacks=[StopMonitor(), monitor]))  # fmt: skip
    assert result.stop_reason == "stopped by callback TrainingProgressMonitor (on_iteration_end)"
    logged = [r for r in result.history.iterations if "accuracy" in r]
    assert monitor.values("loss") == [r["loss"] for r in logged]
    assert monitor.values("validation_loss") == result.history.column("validation_loss")
    assert monitor.info["epoch"] == 2 and monitor.progress == pytest.approx(100 * 5 / 12)
    assert monitor.status == result.stop_reason
    assert (tmp_path / "m.png").stat().st_size > 5_000  # drawn at the end


def test_the_callback_base_class_calls_only_the_hooks_a_subclass_overrides():
    class Epochs(Callback):
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, state, info):
            self.epochs.append((state.epoch, info["epoch"], info["loss"]))

    epochs = Epochs()
    bound = Callbacks([epochs])
    assert bound.has("on_epoch_end")
    assert not any(bound.has(h) for h in ("on_train_start", "on_iteration_end", "on_train_end"))
    result = train(fresh(), data(), "crossentropy", options(max_epochs=3, callbacks=[epochs]))
    assert epochs.epochs == [
        (e, e, loss)
        for e, loss in zip([1, 2, 3], result.history.column("loss", "epoch"), strict=True)
    ]


def test_a_callback_that_overrides_nothing_is_refused():
    with pytest.raises(OptionError, match="subclass deeptoolbox.training.Callback"):
        TrainingOptions(callbacks=[Callback()])


def test_a_subclass_can_stop_training_and_is_named_by_callback_name():
    class Budget(Callback):
        callback_name = "iteration budget"

        def on_iteration_end(self, state, info):
            return state.iteration == 2

    result = train(fresh(), data(), "crossentropy", options(max_epochs=4, callbacks=[Budget()]))
    assert result.stop_reason == "stopped by callback iteration budget (on_iteration_end)"
    assert result.history.column("iteration") == [1, 2]


def test_on_batch_start_returning_a_tensor_instead_of_a_list_names_the_callback():
    class Zeros(Callback):
        def on_batch_start(self, state, inputs, targets):
            return torch.zeros_like(inputs[0])  # a tensor, not [tensor]

    with pytest.raises(OptionError, match=r"Zeros\.on_batch_start.*list of 1 replacement"):
        train(fresh(), data(), "crossentropy", options(callbacks=[Zeros()]))


def test_a_monitor_metric_train_never_gives_is_warned_about(tmp_path):
    monitor = TrainingProgressMonitor(metrics=["loss", "val_loss"], path=tmp_path / "m.png")
    x, y = data()
    with pytest.warns(UserWarning, match=r"no values for the metrics \['val_loss'\]"):
        train(fresh(), (x, y), "crossentropy",
              options(validation_data=(x, y), validation_frequency=2, callbacks=[monitor]))  # fmt: skip
    assert monitor.values("loss") and not monitor.values("val_loss")
