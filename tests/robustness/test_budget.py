"""The memory budget and the time limit of the bound engine: chunking, fallbacks, notes."""

import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import assert_sound
from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import estimate_output_bounds
from deeptoolbox.robustness._budget import Budget, Deadline, OutOfTime, Progress, parse_memory
from deeptoolbox.robustness._crown import Propagator
from deeptoolbox.robustness._graph import to_graph


def _cnn(seed=0):
    torch.manual_seed(seed)
    net = Network([
        L.ImageInput((2, 12, 12)), L.Conv2d(8, 3, padding=1), L.ReLU(),
        L.Conv2d(8, 3, stride=2, padding=1), L.ReLU(), L.Conv2d(8, 3, padding=1), L.ReLU(),
        L.Flatten(), L.Dense(16), L.ReLU(), L.Dense(4),
    ])  # fmt: skip
    net.initialize()
    return net.eval()


def test_memory_sizes_are_parsed_and_bad_ones_name_the_option():
    assert parse_memory("64MB", "f") == 64 * 2**20
    assert parse_memory("2 GiB", "f") == 2 * 2**30
    assert parse_memory(1000, "f") == 1000
    for bad in ("lots", -5, 0, True, "12 parsecs"):
        with pytest.raises(OptionError, match="max_memory"):
            parse_memory(bad, "estimate_output_bounds")
    with pytest.raises(OptionError, match="max_memory.*'lots'"):
        estimate_output_bounds(_cnn(), torch.zeros(1, 2, 12, 12), torch.ones(1, 2, 12, 12),
                               max_memory="lots")  # fmt: skip
    with pytest.raises(OptionError, match="time_limit"):
        estimate_output_bounds(_cnn(), torch.zeros(1, 2, 12, 12), torch.ones(1, 2, 12, 12),
                               time_limit=-1)  # fmt: skip


def test_a_smaller_budget_means_more_chunks_and_the_same_bounds():
    net = _cnn()
    lo = torch.rand(3, 2, 12, 12)
    hi = lo + 0.2
    calls = {}
    original = Propagator.backward

    def counting(self, start, form, alphas=None):
        calls[self.budget.max_memory] = calls.get(self.budget.max_memory, 0) + 1
        return original(self, start, form, alphas)

    Propagator.backward = counting
    try:
        roomy = estimate_output_bounds(net, lo, hi, max_memory="1GB")
        tight = estimate_output_bounds(net, lo, hi, max_memory="1MB")
    finally:
        Propagator.backward = original
    assert roomy.notes == [] and tight.notes == []
    assert calls[2**20] > 2 * calls[2**30]
    torch.testing.assert_close(tight.lower, roomy.lower, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tight.upper, roomy.upper, rtol=1e-5, atol=1e-5)


def test_a_budget_too_small_for_crown_falls_back_to_intervals_and_says_so():
    net = _cnn()
    lo = torch.rand(2, 2, 12, 12)
    hi = lo + 0.2
    ibp = estimate_output_bounds(net, lo, hi, method="ibp")
    crown = estimate_output_bounds(net, lo, hi)
    starved = estimate_output_bounds(net, lo, hi, max_memory="20KB", optimize_slopes=True)
    assert any("memory budget" in note and "IBP" in note for note in starved.notes)
    assert any("conv2d" in note for note in starved.notes)  # the layers concerned are named
    assert_sound(net, lo, hi, starved.lower, starved.upper)
    # never looser than intervals, never tighter than the full computation
    assert bool(
        (starved.lower >= ibp.lower - 1e-5).all() and (starved.upper <= ibp.upper + 1e-5).all()
    )
    assert bool((starved.lower <= crown.lower + 1e-5).all())


@pytest.mark.slow
def test_peak_memory_stays_near_the_budget():
    """Measured in a fresh process: the resident memory grows by about the budget, not more."""
    script = textwrap.dedent("""
        import torch
        torch.set_num_threads(1)
        from deeptoolbox import Network, layers as L
        from deeptoolbox.robustness import estimate_output_bounds
        def status(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        torch.manual_seed(0)
        net = Network([L.ImageInput((3, 32, 32)), L.Conv2d(16, 3, padding=1), L.ReLU(),
                       L.Conv2d(16, 3, padding=1), L.ReLU(), L.Conv2d(16, 3, stride=2, padding=1),
                       L.ReLU(), L.Flatten(), L.Dense(10)])
        net.initialize(); net.eval()
        x = torch.rand(1, 3, 32, 32)
        estimate_output_bounds(net, x - 0.001, x + 0.001, max_memory="8MB")  # warm-up
        open("/proc/self/clear_refs", "w").write("5")
        before = status("VmRSS")
        bounds = estimate_output_bounds(net, x - 0.03, x + 0.03, max_memory="%s")
        print((status("VmHWM") - before) / 2**20, len(bounds.notes))
    """)
    grown = {}
    for budget in ("8MB", "400MB"):
        run = subprocess.run([sys.executable, "-c", script % budget], capture_output=True,
                             text=True, timeout=600)  # fmt: skip
        assert run.returncode == 0, run.stderr
        megabytes, notes = run.stdout.split()
        grown[budget] = float(megabytes)
        assert notes == "0"
    assert grown["8MB"] < 2 * 8 + 4, grown  # the small budget holds (within allocator slack)
    assert grown["8MB"] < grown["400MB"], grown  # and it is what keeps memory down


def test_time_limit_stops_crown_and_keeps_sound_bounds():
    torch.manual_seed(0)
    net = Network([L.ImageInput((3, 20, 20)), L.Conv2d(16, 3, padding=1), L.ReLU(),
                   L.Conv2d(16, 3, padding=1), L.ReLU(), L.Conv2d(16, 3, padding=1), L.ReLU(),
                   L.Flatten(), L.Dense(3)])  # fmt: skip
    net.initialize()
    net.eval()
    lo = torch.rand(1, 3, 20, 20)
    hi = lo + 0.1
    estimate_output_bounds(net, lo, hi, method="ibp")  # warm-up
    begin = time.monotonic()
    ibp = estimate_output_bounds(net, lo, hi, method="ibp")
    ibp_seconds = time.monotonic() - begin
    margin = 2 * ibp_seconds + 1.0  # finishing costs about one IBP pass
    limit = max(0.02, 5 * ibp_seconds)  # room for the interval pass, not for CROWN (~100x IBP)
    begin = time.monotonic()
    bounds = estimate_output_bounds(net, lo, hi, time_limit=limit)
    elapsed = time.monotonic() - begin
    assert elapsed < limit + margin, f"{elapsed:.1f} s for a {limit:.2f} s limit"
    assert any("time limit: CROWN stopped" in note for note in bounds.notes)
    assert bool((bounds.lower >= ibp.lower - 1e-5).all())
    assert_sound(net, lo, hi, bounds.lower, bounds.upper)


def test_deadline_and_progress_helpers():
    assert not Deadline(None).passed and Deadline(-1).passed
    with pytest.raises(OutOfTime):
        Deadline(0).check()
    lines = []

    class Stream:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    progress = Progress("task", enabled=True, every=0.0, stream=Stream())
    progress.update(1, 4, "one")
    progress.update(4, 4, "all", final=True)
    text = "".join(lines)
    assert "task: 1/4 (one)" in text and "left" in text and "task: 4/4 (all)" in text
    quiet = Progress("task", enabled=None, after=60, stream=Stream())
    lines.clear()
    quiet.update(1, 2)
    quiet.update(2, 2, final=True)
    assert lines == []


def test_budget_rows_and_the_propagator_respect_a_given_budget():
    budget = Budget(10 * 2**20)
    assert budget.rows_that_fit(2**20) == 10
    assert budget.rows_that_fit(2**20, reserved=8 * 2**20) == 2
    net = _cnn()
    lo = torch.rand(1, 2, 12, 12)
    propagator = Propagator(to_graph(net), lo, lo + 0.1, "crown", Budget(2**30))
    propagator.linear_lower(torch.eye(4)[None], False, 1)
    assert propagator.budget.notes == []
