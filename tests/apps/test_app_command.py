"""`deeptoolbox app`: the command prints a URL with the token and serves until stopped."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi")
SRC = Path(__file__).resolve().parents[2] / "src"


def test_app_command_prints_a_tokened_url_and_refuses_calls_without_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    process = subprocess.Popen(
        [sys.executable, "-m", "deeptoolbox.cli", "app", "--no-browser", "--root", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line.startswith("deeptoolbox app: http://127.0.0.1:"), process.stderr.read()
        url = line.split(": ", 1)[1].strip()
        base, token = url.split("/?token=")
        assert len(token) >= 32
        assert httpx.get(f"{base}/api/graph").status_code == 401
        graph = httpx.get(f"{base}/api/graph", headers={"X-Deeptoolbox-Token": token}).json()
        assert graph["layers"] == []
        assert str(tmp_path) in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def test_app_command_checks_its_options(tmp_path, capsys):
    from deeptoolbox.cli import main

    assert main(["app", "--no-browser", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["app", "--no-browser", "--root", str(tmp_path / "missing")]) == 2
    assert "--root" in capsys.readouterr().err
