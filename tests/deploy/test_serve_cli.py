"""The real ``deeptoolbox serve`` process on 127.0.0.1: requests over the socket, the API key
from an environment variable, a clean stop on SIGTERM; and the command's bad options."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from deeptoolbox import Network, predict, save
from deeptoolbox import layers as L
from deeptoolbox.cli import main

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

LAUNCH = "import sys; from deeptoolbox.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(process, url: str, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited early:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("serve did not become ready in time")


def bounded_load(url, body, headers, requests: int, concurrency: int) -> list[int]:
    """Send ``requests`` predictions, ``concurrency`` at a time, over the socket; print p50 /
    p99 latency and throughput; return the status codes that were not 200."""

    async def load():
        limit = asyncio.Semaphore(concurrency)
        latencies, failures = [], []
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

            async def one():
                async with limit:
                    began = time.perf_counter()
                    answer = await client.post("/v1/predict", json=body, timeout=60)
                    latencies.append(time.perf_counter() - began)
                    if answer.status_code != 200:
                        failures.append(answer.status_code)

            began = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(requests)))
            elapsed = time.perf_counter() - began
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        print(f"{requests} requests at concurrency {concurrency}: p50 {p50:.1f} ms, "
              f"p99 {p99:.1f} ms, {requests / elapsed:.0f} requests/s")  # fmt: skip
        return failures

    return asyncio.run(load())


@pytest.mark.slow
def test_serve_process_answers_over_the_socket_and_stops_on_sigterm(tmp_path):
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(4), L.Tanh(), L.Dense(2)], name="socket_net")
    path = save(net, tmp_path / "net.zip")
    port = free_port()
    env = {**os.environ, "TEST_SERVE_KEY": "k3y", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", LAUNCH, "serve", str(path), "--port", str(port),
               "--api-key-env", "TEST_SERVE_KEY", "--max-wait-ms", "1"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url)
        x = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
        body = {"inputs": x.tolist()}
        assert httpx.post(f"{url}/v1/predict", json=body).status_code == 401
        answer = httpx.post(f"{url}/v1/predict", json=body, headers={"X-API-Key": "k3y"})
        assert answer.status_code == 200
        np.testing.assert_allclose(answer.json()["outputs"], predict(net, x), atol=1e-5)
        bad = httpx.post(f"{url}/v1/predict", json={"inputs": [[1]]}, headers={"X-API-Key": "k3y"})
        assert bad.status_code == 422 and bad.json()["error"]["expected"] == "(N, 3)"
        assert bounded_load(url, body, {"X-API-Key": "k3y"}, requests=200, concurrency=32) == []
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit status -15)
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "socket_net" in output


def test_serve_refuses_a_missing_api_key_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    model = save(Network([L.FeatureInput(2), L.Dense(1)]), tmp_path / "net.zip")
    assert main(["serve", str(model), "--api-key-env", "NO_SUCH_KEY_VARIABLE"]) != 0
    assert "environment variable NO_SUCH_KEY_VARIABLE is not set" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--port", "70000", "--port"), ("--workers", "0", "--workers"),
     ("--max-batch-size", "0", "max_batch_size"), ("--max-request-mb", "0", "--max-request-mb")],
)  # fmt: skip
def test_serve_checks_its_options_before_loading(tmp_path, option, value, message, capsys):
    assert main(["serve", str(tmp_path / "not-loaded.zip"), option, value]) != 0
    error = capsys.readouterr().err
    assert message in error and "not-loaded" not in error  # the option, before the model


def test_serve_binds_loopback_unless_told_otherwise():
    import argparse

    from deeptoolbox._serve_cli import add_serve_parser

    parser = argparse.ArgumentParser()
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "model.zip"])
    assert (args.host, args.port, args.workers, args.backend) == ("127.0.0.1", 8000, 1, "torch")
    assert args.api_key_env is None and args.cors_origin == []


def test_shutdown_lets_the_in_flight_request_finish():
    import threading

    import uvicorn

    from deeptoolbox.deploy import create_app

    net = Network([L.FeatureInput(2), L.Dense(1)])
    forward = net.forward
    in_model = threading.Event()

    def slow(*args):
        in_model.set()
        time.sleep(1.0)
        return forward(*args)

    app = create_app(net, warm_up=False, max_wait_ms=0)
    net.forward = slow
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            timeout_graceful_shutdown=10)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    answers = []
    client = threading.Thread(target=lambda: answers.append(
        httpx.post(f"{url}/v1/predict", json={"inputs": [[1.0, 2.0]]}, timeout=30)))  # fmt: skip
    client.start()
    assert in_model.wait(timeout=30)  # the request is in the model now
    server.should_exit = True  # what SIGTERM does
    client.join(timeout=30)
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert answers and answers[0].status_code == 200
    assert len(answers[0].json()["outputs"]) == 1
