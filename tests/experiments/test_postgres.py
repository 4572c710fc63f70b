"""Many machines: two `deeptoolbox experiment worker` processes pull the trials of one
experiment from a real, throwaway PostgreSQL server (initdb + pg_ctl in a temporary folder)."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from experiment_processes import deeptoolbox_command
from experiment_setups import slow_quadratic_setup
from optuna.trial import TrialState

from deeptoolbox.experiments import Experiment, list_experiments, load_experiment

pytestmark = pytest.mark.slow


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its commands as the `postgres` user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and no 'postgres' user exists to run the server as; "
                    ".ci/run installs Debian's postgresql package, which creates it")  # fmt: skip
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s",
                                                              "/bin/sh", "-c"]  # fmt: skip


def _run(prefix: list[str], command: list[str]) -> subprocess.CompletedProcess:
    if prefix[-1:] == ["-c"]:  # su: one shell command line
        command = [" ".join(subprocess.list2cmdline([part]) for part in command)]
    return subprocess.run(prefix + command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def postgres_url():
    pytest.importorskip("psycopg", reason="the PostgreSQL driver psycopg is not installed "
                        "(pip install 'deeptoolbox[experiments]')")  # fmt: skip
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in "
                    "/usr/lib/postgresql/*/bin); .ci/run installs Debian's postgresql")  # fmt: skip
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="dtb-postgres-"))
    if prefix:
        shutil.chown(folder, user="postgres")
    data, port = folder / "data", _free_port()
    made = _run(prefix, [initdb, "-D", str(data), "-U", "dtb", "--auth=trust", "-E", "UTF8"])
    assert made.returncode == 0, made.stdout + made.stderr
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = _run(prefix, [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"),
                            "-o", options, "-w", "-t", "60", "start"])  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"postgresql+psycopg://dtb@127.0.0.1:{port}/postgres"
    finally:
        _run(prefix, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_postgresql_experiment(postgres_url, tmp_path):
    values = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    experiment = Experiment("shared", slow_quadratic_setup, {"x": values, "sleep": 1.5},
                            metric="score", store=postgres_url,
                            artifacts=tmp_path / "artifacts")  # fmt: skip
    assert experiment.create() == 1
    workers = [deeptoolbox_command("experiment", "worker", postgres_url, "shared")
               for _ in range(2)]  # fmt: skip
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    ran = [int(out.split(" ran ")[1].split(" ")[0]) for out in outputs]
    assert sum(ran) == 6, outputs

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.params["x"] for t in trials) == values  # every trial ran exactly once
    back = load_experiment("shared", store=postgres_url)
    assert {r.number: r.value for r in back.records()} == {t.number: t.value for t in trials}
    assert back.best.params["x"] == 0.3
    assert len({r.attributes["pid"] for r in back.records()}) == sum(1 for n in ran if n)
    assert [row["name"] for row in list_experiments(postgres_url)] == ["shared"]
