"""The Training Monitor's callback and reader, without a browser."""

import json

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.apps import TrainingMonitorLog
from deeptoolbox.apps._monitor import list_runs, read_events, request_stop, run_folder
from deeptoolbox.errors import NetworkFileError, OptionError
from deeptoolbox.training import TrainingOptions, train


def _train(log, epochs=3, stop_after=None):
    x = torch.randn(32, 3)
    y = (x[:, 0] > 0).long()
    net = Network([L.FeatureInput(3), L.Dense(2), L.Softmax()])
    callbacks = [log]
    if stop_after is not None:

        class PressStop:
            def on_iteration_end(self, state, info):
                if info["iteration"] == stop_after:
                    request_stop(log.folder)

        callbacks.insert(0, PressStop())
    options = TrainingOptions(max_epochs=epochs, mini_batch_size=8, verbose=False,
                              verbose_frequency=1, metrics=["accuracy"], seed=0,
                              validation_data=(x, y), validation_frequency=2,
                              callbacks=callbacks)  # fmt: skip
    return train(net, (x, y), "crossentropy", options)


def test_events_follow_the_training_history(tmp_path):
    log = TrainingMonitorLog(tmp_path, name="run")
    result = _train(log)
    events = read_events(log.folder)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    iterations = [e for e in events if e["event"] == "iteration"]
    assert [e["iteration"] for e in iterations] == list(range(1, 13))
    losses = [row["loss"] for row in result.history.iterations]
    assert [e["loss"] for e in iterations] == pytest.approx(losses)
    assert "accuracy" in iterations[0]["metrics"]
    validations = [e for e in events if e["event"] == "validation"]
    assert [e["iteration"] for e in validations] == [1, 2, 4, 6, 8, 10, 12]  # first, then every 2
    assert read_events(log.folder, since=len(events) - 1) == events[-1:]
    [run] = list_runs(tmp_path)
    assert run["name"] == "run" and not run["running"] and run["iteration"] == 12


def test_the_stop_file_ends_training_with_the_network_kept(tmp_path):
    log = TrainingMonitorLog(tmp_path, name="stopped")
    result = _train(log, epochs=50, stop_after=5)
    assert "TrainingMonitorLog" in result.stop_reason
    assert len(result.history.iterations) == 5
    assert result.network(torch.zeros(1, 3)).shape == (1, 2)
    end = read_events(log.folder)[-1]
    assert end["event"] == "end" and "TrainingMonitorLog" in end["stop_reason"]


def test_a_half_written_line_waits_for_the_next_read(tmp_path):
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "events.jsonl").write_text(json.dumps({"event": "start"}) + '\n{"event": "ite')
    assert read_events(folder) == [{"event": "start"}]


def test_run_ids_and_names_are_checked(tmp_path):
    with pytest.raises(OptionError, match="name"):
        TrainingMonitorLog(tmp_path, name="../escape")
    with pytest.raises(OptionError, match="run id"):
        run_folder(tmp_path, "../etc")
    with pytest.raises(NetworkFileError, match="no run"):
        run_folder(tmp_path, "missing")


def test_plots_monitor_records_the_run_where_the_app_follows_it(tmp_path, capsys):
    """TrainingOptions(plots="monitor") is a TrainingMonitorLog into plot_path, with the
    command that watches it printed; the app's monitor routes list and read that run."""
    import torch

    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.apps import _monitor
    from deeptoolbox.training import TrainingOptions, train

    runs = tmp_path / "runs"
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    net = Network([L.FeatureInput(4), L.Dense(2), L.Softmax()])
    options = TrainingOptions(max_epochs=2, mini_batch_size=16, plots="monitor", plot_path=runs,
                              metrics=["accuracy"], verbose=True)  # fmt: skip
    train(net, (x, y), "crossentropy", options)
    printed = capsys.readouterr().out
    assert f"--root {tmp_path.resolve()} --runs runs" in printed
    [run] = _monitor.list_runs(runs)
    assert not run["running"] and run["iteration"] == 8
    events = _monitor.read_events(_monitor.run_folder(runs, run["id"]))
    assert [e["event"] for e in events][0] == "start" and events[-1]["event"] == "end"
    assert not (tmp_path / "training-progress.png").exists()  # no PNG plot with "monitor"


def test_a_finished_a_stopped_and_a_failed_run_each_say_so(tmp_path):
    """The run's state comes from its events: finished (max epochs), stopped (Stop pressed)
    and failed (an exception in train(): the error and the iteration it reached); the start
    event names the host and the end event the final iteration."""
    import socket

    finished = TrainingMonitorLog(tmp_path, name="done")
    _train(finished, epochs=1)
    stopped = TrainingMonitorLog(tmp_path, name="halted")
    _train(stopped, epochs=50, stop_after=5)

    class Breaks:
        def on_iteration_end(self, state, info):
            if info["iteration"] == 3:
                raise RuntimeError("the data loader broke")

    failed = TrainingMonitorLog(tmp_path, name="broken")
    x = torch.randn(32, 3)
    options = TrainingOptions(max_epochs=5, mini_batch_size=8, verbose=False,
                              callbacks=[Breaks(), failed])  # fmt: skip
    with pytest.raises(RuntimeError, match="the data loader broke"):
        train(Network([L.FeatureInput(3), L.Dense(1)]), (x, x[:, :1]), "mse", options)
    runs = {run["name"]: run for run in list_runs(tmp_path)}
    assert {n: (r["state"], r["iteration"], r["running"]) for n, r in runs.items()} == {
        "done": ("finished", 4, False), "halted": ("stopped", 5, False),
        "broken": ("failed", 2, False)}  # fmt: skip
    assert "RuntimeError: the data loader broke" in runs["broken"]["error"]
    assert runs["done"]["host"] == socket.gethostname() and runs["done"]["error"] is None
    assert read_events(finished.folder)[-1] == {**read_events(finished.folder)[-1],
                                                 "event": "end", "iteration": 4}  # fmt: skip


def test_a_run_whose_process_is_gone_without_an_end_is_failed(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    for name, pid in (("orphan", int(gone.stdout)), ("live", os.getpid())):
        folder = tmp_path / name
        folder.mkdir()
        start = {"event": "start", "name": name, "pid": pid, "host": socket.gethostname()}
        (folder / "events.jsonl").write_text(json.dumps(start) + "\n")
    runs = {run["name"]: run for run in list_runs(tmp_path)}
    assert runs["orphan"]["state"] == "failed" and "ended without" in runs["orphan"]["error"]
    assert runs["live"]["state"] == "running" and runs["live"]["running"]
