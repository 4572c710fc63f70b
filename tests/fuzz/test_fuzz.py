"""Every reader of untrusted input, fuzzed: saved networks, ONNX, Keras, VNN-LIB, checkpoints,
images, signals, tokenizers, experiment stores, server and app request bodies.

The targets run under atheris (coverage-guided) from a seed corpus of valid files written
here, and must find nothing: a reader returns an object or raises a deeptoolbox error naming
the file. `make test` runs all targets in one process for 3,000 inputs or FUZZ_SECONDS (default 60), whichever comes first (the first
byte of an input picks its target); `make fuzz` runs each target on its own for minutes
(FUZZ_EACH=1) and keeps what it finds (FUZZ_SAVE=1). The inputs that
broke a reader once are kept under tests/fuzz/corpus/<target>/ and replayed here in-process.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
sys.path.insert(0, str(Path(__file__).parent))

from targets import TARGETS, _chosen, check_one, write_seeds  # noqa: E402

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
SECONDS = float(os.environ.get("FUZZ_SECONDS", "60"))
RUNS = sorted(TARGETS) if os.environ.get("FUZZ_EACH") else ["all"]
# make test fuzzes from a fixed seed and a fixed number of inputs, so that it gives the same
# answer on every run; `make fuzz` (FUZZ_EACH) explores with fresh seeds for FUZZ_SECONDS
SEED = [] if os.environ.get("FUZZ_EACH") else ["-seed=1", "-runs=3000"]


def regression_cases():
    for folder in sorted(CORPUS.iterdir()) if CORPUS.is_dir() else []:
        for case in sorted(folder.iterdir()):
            yield pytest.param(folder.name, case, id=f"{folder.name}/{case.name}")


@pytest.mark.parametrize(("name", "case"), list(regression_cases()))
def test_an_input_that_once_broke_a_reader_gives_a_toolbox_error(name, case, tmp_path):
    check_one(TARGETS[name], case.read_bytes(), tmp_path)


@pytest.mark.parametrize("name", RUNS)
def test_the_readers_survive_coverage_guided_fuzzing(name, tmp_path):
    corpus = tmp_path / "corpus"
    seeds = write_seeds(TARGETS.get(name), corpus)
    command = [sys.executable, str(HERE / "targets.py"), name, str(corpus),
               f"-max_total_time={SECONDS:g}", "-timeout=30", "-rss_limit_mb=4096", *SEED,
               f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SECONDS + 300)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", done.stderr)
    print(f"{name}: {runs[-1] if runs else '?'} executions in {SECONDS:g} s from {seeds} seeds")
    per_target = re.findall(r"inputs per target: (\{.*\})", done.stderr)
    if per_target:
        print(f"  {per_target[-1]}")
    found = sorted(
        p for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-"))
    )
    if found and os.environ.get("FUZZ_SAVE"):
        for path in found:
            data = path.read_bytes()
            target, data = _chosen(data) if name == "all" else (TARGETS[name], data)
            keep = CORPUS / target.name
            keep.mkdir(parents=True, exist_ok=True)
            (keep / path.name).write_bytes(data)
    assert done.returncode == 0 and not found, (
        f"{name}: the fuzzer found an input that breaks the reader ({[p.name for p in found]}; "
        f"`make fuzz` keeps them in tests/fuzz/corpus/{name}/):\n{done.stderr[-3000:]}"
    )
