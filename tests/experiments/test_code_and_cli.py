"""Code snapshots and comparison, and the `deeptoolbox experiment` commands."""

import hashlib

import pytest

import deeptoolbox
from deeptoolbox.cli import main
from deeptoolbox.experiments import compare_code, load_experiment
from deeptoolbox.experiments._cli import load_spec

SPEC = """from deeptoolbox.experiments import Experiment


def setup(params, monitor):
    monitor.metrics = ["score"]
    offset = {offset}
    monitor.record(1, score=params["x"] + offset)
    return {{}}


experiment = Experiment("{name}", setup, {{"x": [1, 2, 3]}}, metric="score",
                        store={store!r}, artifacts=False)
"""


def spec(folder, name, offset, store, file=None):
    path = folder / (file or f"{name}.py")
    path.write_text(SPEC.format(name=name, offset=offset, store=str(store)))
    return path


def changed_lines(diff: str) -> list[str]:
    return [line for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]  # fmt: skip


def test_setups_differing_by_one_line_diff_in_exactly_that_line(tmp_path, capsys):
    store = tmp_path / "e.db"
    (first,) = load_spec(spec(tmp_path, "first", 0.0, store))
    (second,) = load_spec(spec(tmp_path, "second", 0.5, store))
    first.run(workers=0, verbose=False)
    second.run(workers=0, verbose=False)
    assert changed_lines(compare_code(first, second)) == ["-    offset = 0.0", "+    offset = 0.5"]
    assert compare_code(first, first) == ""
    assert main(["experiment", "diff", "first", "second", "--store", str(store)]) == 0
    assert changed_lines(capsys.readouterr().out) == ["-    offset = 0.0", "+    offset = 0.5"]


def test_the_code_snapshot_holds_source_file_hash_and_versions(tmp_path):
    store = tmp_path / "e.db"
    path = spec(tmp_path, "snap", 1.0, store)
    (experiment,) = load_spec(path)
    experiment.run(workers=0, verbose=False)
    code = load_experiment("snap", store=store).code()
    text = path.read_text()
    assert code.run == 1 and code.source.startswith("def setup(params, monitor):")
    assert code.file_source == text and code.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert code.setup["file"] == str(path)
    assert code.parameters == {"x": {"type": "values", "values": [1, 2, 3]}}
    assert code.versions["deeptoolbox"] == deeptoolbox.__version__
    assert code.versions["optuna"] and code.versions["packages"]["torch"]


def test_two_runs_of_one_experiment_compare_and_resume_from_stored_code(tmp_path, capsys):
    store = tmp_path / "e.db"
    assert main(["experiment", "run", str(spec(tmp_path, "twice", 0.0, store, "v1.py")),
                 "--workers", "0", "--quiet"]) == 0  # fmt: skip
    path = spec(tmp_path, "twice", 0.25, store, "v2.py")
    assert main(["experiment", "run", str(path), "--workers", "0", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["experiment", "diff", "twice:1", "twice:2", "--store", str(store)]) == 0
    assert changed_lines(capsys.readouterr().out) == ["-    offset = 0.0", "+    offset = 0.25"]
    experiment = load_experiment("twice", store=store)
    assert experiment.runs() == [1, 2] and len(experiment.records()) == 3  # nothing re-run
    with pytest.raises(Exception, match="no run 5"):
        experiment.code(run=5)


def test_commands_list_show_export_worker_resume(tmp_path, capsys):
    store = tmp_path / "e.db"
    path = spec(tmp_path, "cli", 0.0, store)
    assert main(["experiment", "run", str(path), "--create-only"]) == 0
    assert "experiment worker" in capsys.readouterr().out
    assert main(["experiment", "worker", str(store), "cli", "--max-trials", "2"]) == 0
    assert "ran 2 trial(s)" in capsys.readouterr().out
    assert main(["experiment", "list", "--store", str(store)]) == 0
    assert "cli  exhaustive  score (maximize): best 2 (trial 1); 2 completed, 1 queued" in (
        capsys.readouterr().out
    )
    assert main(["experiment", "resume", "cli", "--store", str(store), "--workers", "0"]) == 0
    assert "trial 2 completed score=3" in capsys.readouterr().out
    assert main(["experiment", "show", "cli", "--store", str(store), "--sort", "score"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[1].split() == ["trial", "status", "x", "score", "duration"]
    assert [line.split()[0] for line in shown[2:5]] == ["2", "1", "0"]
    assert shown[-1].startswith("best: trial 2 score=3")
    assert main(["experiment", "export", "cli", "--csv", str(tmp_path / "r.csv"),
                 "--store", str(store)]) == 0  # fmt: skip
    assert (tmp_path / "r.csv").read_text().count("\n") == 4


def test_command_errors_exit_with_status_2(tmp_path, capsys):
    store = tmp_path / "e.db"
    assert main(["experiment", "show", "nothing", "--store", str(store)]) == 2
    assert main(["experiment", "run", str(tmp_path / "missing.py")]) == 2
    (tmp_path / "empty.py").write_text("x = 1\n")
    assert main(["experiment", "run", str(tmp_path / "empty.py")]) == 2
    errors = capsys.readouterr().err
    assert "does not exist" in errors and "defines no Experiment" in errors
