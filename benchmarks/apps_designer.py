"""Network Designer on a large graph: torchvision's DenseNet-121 imported with ``from_torch``.

Measures (1) the server's answer to ``GET /api/graph`` (live analysis of every layer), (2) one
edit coming back with fresh analysis (``set`` a property of the classifier head), and, with
Debian's chromium, (3) the time from opening the designer page to the first complete render
(every layer node drawn) and (4) one edit from the browser until the canvas shows the new
size.

Run: ``.venv/bin/python benchmarks/apps_designer.py [--model densenet121] [--rounds 3]``.
Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch


def _import(model: str):
    import torchvision

    from deeptoolbox.interop import from_torch

    module = getattr(torchvision.models, model)(weights=None).eval()
    return from_torch(module, torch.zeros(1, 3, 224, 224))


def _server_times(net, rounds: int) -> tuple[float, float]:
    from fastapi.testclient import TestClient

    from deeptoolbox.apps import AppOptions, DesignerSession, create_app

    options = AppOptions(root=tempfile.mkdtemp())
    client = TestClient(create_app(DesignerSession(net), options),
                        headers={"X-Deeptoolbox-Token": options.token})  # fmt: skip
    graph_times, edit_times = [], []
    dense = next(n for n in reversed(net.layer_names) if type(net.layer(n)).__name__ == "Dense")
    for k in range(rounds):
        start = time.perf_counter()
        client.get("/api/graph").raise_for_status()
        graph_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        edit = {"op": "set", "name": dense, "config": {"units": 10 + k}}
        client.post("/api/edit", json=edit).raise_for_status()
        edit_times.append(time.perf_counter() - start)
    return statistics.median(graph_times), statistics.median(edit_times)


def _browser_times(net) -> tuple[float, float] | None:
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    from deeptoolbox.apps import designer

    handle = designer(net, root=tempfile.mkdtemp(), open_browser=False)
    count = len(net.layer_names)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(300_000)
            start = time.perf_counter()
            page.goto(handle.url)
            page.wait_for_function(  # every node laid out and in the React Flow store
                f"document.querySelector('.react-flow__minimap') && "
                f"document.querySelectorAll('.react-flow__minimap-node').length >= {count}"
            )
            render = time.perf_counter() - start
            dense = next(n for n in reversed(net.layer_names)
                         if type(net.layer(n)).__name__ == "Dense")  # fmt: skip
            start = time.perf_counter()
            page.evaluate(
                "([name]) => fetch('/api/edit', {method: 'POST', headers: {'Content-Type': "
                "'application/json', 'X-Deeptoolbox-Token': new URLSearchParams(location.search)"
                ".get('token')}, body: JSON.stringify({op: 'set', name, config: {units: 7}})})"
                ".then(r => r.json())",
                [dense],
            )
            edit = time.perf_counter() - start
            browser.close()
    finally:
        handle.close()
    return render, edit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="densenet121")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    net = _import(args.model)
    print(f"{args.model}: {len(net.layer_names)} layers, {len(net.connections)} connections, "
          f"imported in {time.perf_counter() - start:.1f} s")  # fmt: skip
    graph, edit = _server_times(net, args.rounds)
    print(f"server: GET /api/graph {graph * 1000:.0f} ms, one edit with analysis "
          f"{edit * 1000:.0f} ms (median of {args.rounds})")  # fmt: skip
    browser = _browser_times(net)
    if browser is None:
        print("browser: skipped (no chromium on PATH)")
    else:
        print(f"browser: first complete render {browser[0]:.2f} s, one edit from the page "
              f"{browser[1] * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
