"""Monitor: MATLAB's experiments.Monitor for custom-training setup functions."""

import pytest
from PIL import Image

from deeptoolbox.errors import OptionError
from deeptoolbox.experiments import Monitor


def test_records_declared_metrics_and_info():
    monitor = Monitor(metrics=["training_loss", "validation_loss"], info=["epoch"])
    for iteration in range(1, 5):
        monitor.record(iteration, training_loss=1.0 / iteration)
    monitor.record(4, validation_loss=0.3)
    monitor.update_info(epoch=2)
    assert monitor.values("training_loss") == [1.0, 0.5, 1 / 3, 0.25]
    assert monitor.last("validation_loss") == 0.3 and monitor.last("unrecorded") is None
    assert monitor.info_values == {"epoch": 2}
    assert monitor.reported() == ["training_loss", "validation_loss"]
    assert not monitor.stop_requested and monitor.stop_reason is None


def test_undeclared_names_and_bad_values_are_errors():
    monitor = Monitor(metrics=["loss"], info=["epoch"])
    with pytest.raises(OptionError, match=r"unknown metric 'acc'.*\['loss'\]"):
        monitor.record(1, acc=0.5)
    with pytest.raises(OptionError, match="unknown field 'lr'"):
        monitor.update_info(lr=0.1)
    with pytest.raises(OptionError, match="must be a number"):
        monitor.record(1, loss="high")
    with pytest.raises(OptionError, match="0 to 100"):
        monitor.progress = 150
    with pytest.raises(OptionError, match="unknown metrics"):
        monitor.group_subplot("Both", ["loss", "accuracy"])


def test_metrics_declared_later_like_matlab():
    monitor = Monitor()
    monitor.metrics = ["a", "b"]
    monitor.info = "step"
    monitor.record(1, a=1.0, b=2.0)
    assert monitor.metrics == ["a", "b"] and monitor.info == ["step"]


def test_plot_groups_training_and_validation_curves(tmp_path):
    monitor = Monitor(metrics=["training_loss", "validation_loss", "training_accuracy", "lr"])
    for i in range(1, 6):
        monitor.record(i, training_loss=1 / i, training_accuracy=i / 10, lr=0.1)
    monitor.record(5, validation_loss=0.25)
    monitor.group_subplot("Schedule", ["lr"])
    panels = monitor.panels()
    assert list(panels) == ["Schedule", "Loss", "Accuracy"]
    assert set(panels["Loss"]) == {"training_loss", "validation_loss"}
    path = monitor.plot(tmp_path / "progress.png")
    with Image.open(path) as image:
        assert image.size[0] > 300 and image.size[1] > 200
