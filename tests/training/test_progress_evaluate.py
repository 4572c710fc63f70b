"""Progress display and plots, TrainingProgressMonitor, evaluate() and confusion_chart()."""

import numpy as np
import pytest
import torch
from PIL import Image

from deeptoolbox import Network, classify
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.training import (
    TrainingOptions,
    TrainingProgressMonitor,
    confusion_chart,
    evaluate,
    train,
)


def blobs(n=96):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def net3():
    torch.manual_seed(0)
    return Network([L.FeatureInput(2), L.Dense(3), L.Softmax()], classes=["a", "b", "c"])


def test_verbose_table_prints_rows_and_plot_png_is_written(tmp_path, capsys):
    x, y = blobs()
    options = TrainingOptions(
        seed=0,
        max_epochs=2,
        mini_batch_size=16,
        verbose_frequency=4,
        validation_data=(x, y),
        validation_frequency=6,
        metrics=["accuracy"],
        plots="training-progress",
        plot_path=tmp_path / "progress.png",
    )
    result = train(net3(), (x, y), "crossentropy", options)
    out = capsys.readouterr().out
    assert "Mini-batch Loss" in out and "Validation accuracy" in out and "Learn Rate" in out
    rows = [line for line in out.splitlines() if line.startswith("|") and "=" not in line]
    iterations = [int(r.split("|")[2]) for r in rows[1:]]
    assert iterations == [1, 4, 6, 8, 12]  # first, every 4th, validations, last
    assert Image.open(tmp_path / "progress.png").size[0] > 400
    assert result.plot(tmp_path / "again.png").stat().st_size > 10_000


def test_verbose_off_prints_nothing(capsys):
    train(net3(), blobs(), "crossentropy", TrainingOptions(verbose=False, max_epochs=1))
    assert capsys.readouterr().out == ""


def test_progress_monitor_records_and_draws(tmp_path):
    monitor = TrainingProgressMonitor(
        metrics=["train", "valid"], info=["epoch"], path=tmp_path / "m.png", refresh_seconds=1e9
    )
    monitor.group_subplot("Loss", ["train", "valid"])
    for step in range(1, 6):
        monitor.record_metrics(step, train=1 / step, valid=1.5 / step)
    monitor.update_info(epoch=2)
    assert monitor.values("valid")[-1] == pytest.approx(0.3)
    assert not (tmp_path / "m.png").exists()  # not yet redrawn
    assert monitor.save().stat().st_size > 5_000
    with pytest.raises(OptionError, match="unknown metric 'accuracy'"):
        monitor.record_metrics(6, accuracy=0.9)
    with pytest.raises(OptionError, match="unknown field"):
        monitor.update_info(speed=3)


def test_evaluate_matches_classify_and_reference_numbers():
    x, y = blobs()
    net = net3()
    labels, scores = classify(net, x)
    values = evaluate(
        net, (x, y), ["accuracy", "precision", "recall", "fscore"], loss="crossentropy"
    )
    truth = np.asarray(["a", "b", "c"])[y.numpy()]
    assert values["accuracy"] == pytest.approx(float(np.mean(labels == truth)))
    from sklearn.metrics import f1_score, precision_score, recall_score

    predicted = scores.argmax(1).numpy()
    assert values["fscore"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert values["recall"] == pytest.approx(recall_score(y, predicted, average="macro"))
    kwargs = dict(average="macro", zero_division=0, labels=sorted(set(y.tolist())))
    assert values["precision"] == pytest.approx(precision_score(y, predicted, **kwargs))
    expected = torch.nn.functional.nll_loss(torch.log(scores), y)
    assert values["loss"] == pytest.approx(float(expected), rel=1e-5)


def test_evaluate_regression_metrics():
    net = Network([L.FeatureInput(2), L.Dense(1)])
    x = torch.randn(40, 2)
    y = torch.randn(40, 1)
    values = evaluate(net, (x, y), ["rmse", "mae"])
    error = net(x).detach() - y
    assert values["rmse"] == pytest.approx(float(error.pow(2).mean().sqrt()), rel=1e-5)
    assert values["mae"] == pytest.approx(float(error.abs().mean()), rel=1e-5)
    with pytest.raises(InputSizeError, match="targets"):
        evaluate(net, x, ["rmse"])


def test_confusion_chart_counts_and_png(tmp_path):
    chart = confusion_chart(
        ["cat", "dog", "dog", "cow"],
        ["cat", "cat", "dog", "cow"],
        classes=["cat", "cow", "dog"],
        path=tmp_path / "c.png",
    )
    assert chart.matrix.tolist() == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert chart.accuracy == 0.75
    assert Image.open(tmp_path / "c.png").size[0] > 300
    with pytest.raises(OptionError, match="not in `classes`"):
        confusion_chart(["x"], ["y"], classes=["x"])
    with pytest.raises(InputSizeError, match="2 labels"):
        confusion_chart(["x", "x"], ["x"])
