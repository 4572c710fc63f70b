"""Inference server throughput with micro-batching against without, under concurrent load.

Two ``deeptoolbox serve`` processes on 127.0.0.1 serve the same model: by default a wide MLP
(256 -> 2048 -> 2048 -> 10, 4.7 M weights, whose cost per call is mostly reading its weights,
so a batch of 32 costs far less than 32 single runs), or with ``--model cnn`` a small CNN on
28 x 28 images (cheap enough that HTTP and JSON, not the model, set the pace). One server has micro-batching (``--max-batch-size 32 --max-wait-ms 2``), one without
(``--max-batch-size 1``). Rounds alternate between them (interleaved, so both see the same
machine state); each round sends ``--requests`` predictions at ``--concurrency`` over HTTP
with httpx, checks that every answer is 200 and equals ``net.predict`` for its input, and
prints p50 / p99 latency and throughput. The printed ratio is requests/s with batching over
requests/s without (median over rounds); the issue's expectation is >= 2 at concurrency 32.

The load generator runs on the same machine as the servers and takes CPU from them, so
absolute figures are lower than a remote client would see; the ratio is what this measures.

Run: ``.venv/bin/python benchmarks/serve.py [--requests 2000] [--concurrency 32] [--rounds 3]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from deeptoolbox import Network, predict, save
from deeptoolbox import layers as L

LAUNCH = "import sys; from deeptoolbox.cli import main; sys.exit(main())"


def wide_mlp() -> Network:
    torch.manual_seed(0)
    return Network(
        [L.FeatureInput(256), L.Dense(2048), L.ReLU(), L.Dense(2048), L.ReLU(), L.Dense(10),
         L.Softmax()],
        name="bench_mlp",
    )  # fmt: skip


def cnn() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.ImageInput((1, 28, 28)),
            L.Conv2d(16, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
            L.Conv2d(32, 3, padding=1), L.ReLU(), L.MaxPool2d(2),
            L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(10), L.Softmax(),
        ],
        name="bench_cnn",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, batch: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-c", LAUNCH, "serve", str(model), "--port", str(port),
               "--max-batch-size", str(batch), "--max-wait-ms", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit("the server did not become ready")


async def load(url: str, bodies: list[dict], expected: np.ndarray, concurrency: int) -> dict:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(index: int) -> None:
            async with limit:
                began = time.perf_counter()
                try:
                    answer = await client.post("/v1/predict", json=bodies[index])
                except httpx.TransportError as err:  # counted, so one dropped connection
                    errors.append(f"request {index}: {type(err).__name__}: {err}")  # shows
                    return
                latencies.append(time.perf_counter() - began)
            if answer.status_code != 200:
                errors.append(f"{answer.status_code}: {answer.text[:200]}")
            elif not np.allclose(answer.json()["outputs"][0], expected[index], atol=1e-5):
                errors.append(f"request {index}: outputs differ from net.predict")

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(bodies))))
        elapsed = time.perf_counter() - began
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return {"rate": len(bodies) / elapsed, "p50": p50, "p99": p99, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server")
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    args = parser.parse_args()

    net = wide_mlp() if args.model == "mlp" else cnn()
    rng = np.random.default_rng(0)
    size = (256,) if args.model == "mlp" else (1, 28, 28)
    images = rng.random((args.requests, *size), dtype=np.float32)
    expected = predict(net, images).numpy()
    bodies = [{"inputs": image[None].tolist()} for image in images]
    results: dict[str, list[dict]] = {"batching": [], "no batching": []}
    with tempfile.TemporaryDirectory() as folder:
        model = save(net, Path(folder) / "model.zip")
        servers = {"batching": start_server(model, 32, args.threads),
                   "no batching": start_server(model, 1, args.threads)}  # fmt: skip
        try:
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    result = asyncio.run(load(url, bodies, expected, args.concurrency))
                    results[name].append(result)
                    print(f"{name:12s} {args.requests} requests at concurrency "
                          f"{args.concurrency}: {result['rate']:7.1f} requests/s, p50 "
                          f"{result['p50']:7.1f} ms, p99 {result['p99']:7.1f} ms, "
                          f"{len(result['errors'])} errors", flush=True)  # fmt: skip
                    for error in result["errors"][:3]:
                        print("   ", error)
        finally:
            for process, _ in servers.values():
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    rates = {name: statistics.median(r["rate"] for r in runs) for name, runs in results.items()}
    failures = sum(len(r["errors"]) for runs in results.values() for r in runs)
    print(f"model {net.name}; throughput ratio batching / no batching: {rates['batching'] / rates['no batching']:.2f}"
          f" (median of {args.rounds} rounds; expected >= 2); errors in all rounds: {failures}")  # fmt: skip


if __name__ == "__main__":
    main()
