"""A failure on one of several training processes (gloo, 2 CPU processes): the others stop
within seconds with a TrainingError naming it, and a later train() call in the same script
is not confused by the record the failure left."""

import json
import textwrap
import time

import pytest

from deeptoolbox.errors import TrainingError
from deeptoolbox.training import launch
from deeptoolbox.training._failures import RunFailures, parse_record, record_text

SCRIPT = textwrap.dedent("""
    import json, os, sys, time, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.training import TrainingOptions, train

    def setup():
        g = torch.Generator().manual_seed(0)
        x = torch.randn(64, 3, generator=g)
        y = (x[:, 0] > x[:, 2]).long()
        torch.manual_seed(0)
        return Network([L.FeatureInput(3), L.Dense(8), L.ReLU(), L.Dense(2)]), x, y

    class FailingLoss:  # raises on process `rank` (None: every one) at its `iteration`-th batch
        def __init__(self, rank, iteration):
            self.rank, self.iteration, self.calls = rank, iteration, 0

        def __call__(self, outputs, targets):
            self.calls += 1
            rank = int(os.environ["RANK"])
            if self.rank in (None, rank) and self.calls == self.iteration:
                raise ValueError(f"bad batch on rank {rank}")
            return torch.nn.functional.cross_entropy(outputs, targets)

    def attempt(loss, strategy):
        net, x, y = setup()
        options = TrainingOptions(solver="sgdm", max_epochs=2, mini_batch_size=16, seed=1,
                                  verbose=False, strategy=strategy,
                                  execution_environment="parallel")
        started = time.monotonic()
        try:
            train(net, (x, y), loss, options)
            return {"error": None}
        except Exception as err:
            return {"error": type(err).__name__, "message": str(err),
                    "seconds": time.monotonic() - started,
                    "failed_process": getattr(err, "failed_process", None)}

    def save(report):
        with open(f"{sys.argv[1]}.rank{os.environ['RANK']}.json", "w") as f:
            json.dump(report, f)

    if __name__ == "__main__":
        strategy = sys.argv[2]
        report = [attempt(FailingLoss(None, 3), strategy)]  # both fail at iteration 3
        # a second call, on a new group: process 0 fails at iteration 2 and its script ends
        # there (exit code 0, so the launcher leaves process 1 running); process 1 waits in
        # the gradient all-reduce for it
        report.append(attempt(FailingLoss(0, 2), strategy))
        save(report)
""")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp"])
def test_a_failing_process_stops_the_others_naming_it(tmp_path, strategy):
    script = tmp_path / "failing.py"
    script.write_text(SCRIPT)
    started = time.monotonic()
    assert launch(script, 2, [str(tmp_path / "out"), strategy]) == 0
    assert time.monotonic() - started < 90  # nobody waited for the group's 30-min timeout
    reports = [json.loads((tmp_path / f"out.rank{r}.json").read_text()) for r in (0, 1)]
    for rank in (0, 1):  # call 1: each process raises its own error, nobody hangs
        assert reports[rank][0]["error"] == "ValueError", reports[rank][0]
        assert reports[rank][0]["message"] == f"bad batch on rank {rank}"
    # call 2: process 0 failed; process 1 stops within seconds naming it and its exception,
    # not the record call 1 left in the store (another run id)
    assert reports[0][1]["error"] == "ValueError", reports[0][1]
    second = reports[1][1]
    assert second["error"] == "TrainingError" and second["failed_process"] == 0, second
    assert "process 0 of 2 failed: ValueError: bad batch on rank 0" in second["message"]
    assert second["seconds"] < 30, second


def test_failure_records_name_the_rank_and_the_exception():
    text = record_text(2, KeyError("column 'x'"))
    assert text == "rank 2: KeyError: \"column 'x'\""
    assert parse_record(text) == (2, "KeyError: \"column 'x'\"")
    long = record_text(0, ValueError("v" * 5000))
    assert len(long) < 2100 and long.endswith(" ...")
    assert RunFailures.start(0, 1) is None  # no process group: nothing to watch


class _Store:  # the few TCPStore calls RunFailures makes
    def __init__(self):
        self.values = {}

    def check(self, keys):
        return all(k in self.values for k in keys)

    def get(self, key):
        return self.values[key]

    def compare_set(self, key, expected, desired):
        if key not in self.values and expected == "":
            self.values[key] = desired.encode()
        return self.values[key]


def test_the_first_record_wins_and_runs_do_not_read_each_others():
    store = _Store()
    old = RunFailures(1, 2, "run-a", store, watch=False)
    assert old.handle(ValueError("boom"), 3).args == ("boom",)  # its own error, recorded
    assert store.values == {"deeptoolbox/train/run-a/failed": b"rank 1: ValueError: boom"}
    peer = RunFailures(0, 2, "run-a", store, watch=False)
    error = peer.handle(RuntimeError("Connection closed by peer"), 3)
    assert isinstance(error, TrainingError) and error.failed_process == 1
    assert "process 1 of 2 failed: ValueError: boom" in str(error)
    assert "this one, process 0, at iteration 3" in str(error)
    new = RunFailures(0, 2, "run-b", store, watch=False)  # the next call of the script
    late = RuntimeError("Connection closed by peer")
    assert new.handle(late, 1) is late  # not explained by the stale record of run-a
    assert (
        store.values["deeptoolbox/train/run-b/failed"] == b"rank 0: RuntimeError: "
        b"Connection closed by peer"
    )
    both = RunFailures(0, 2, "run-a", store, watch=False)  # failed on its own too
    mine = KeyError("k")
    assert both.handle(mine, 3) is mine  # its own error, though process 1 recorded first
