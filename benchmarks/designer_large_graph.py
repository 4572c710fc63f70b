"""Network Designer on large graphs: torchvision's ResNet-50 and DenseNet-121 (random weights,
nothing downloaded) imported with ``from_torch`` and opened in the designer in headless
chromium.

For each network it measures
(a) the time from opening the designer page to the first complete render: the graph laid out
    (the canvas's ``data-laid-out``) and every layer in the React Flow store (the minimap
    draws one rectangle per layer), and
(b) one edit through the page: the ``filters`` of a convolution in the middle typed in the side panel
    and Enter, until the panel shows the output size the server's fresh analysis sent back
    (every later layer is re-sized and re-checked, and the canvas redraws the changed ones);
and, for reference, the server alone: ``GET /api/graph`` and the same edit through the API.

Run: ``.venv/bin/python benchmarks/designer_large_graph.py [--models resnet50 densenet121]
[--rounds 3]``. Needs the ``apps`` extra, playwright and Debian's chromium. Figures recorded
in docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

import torch


def import_network(model: str):
    """torchvision's ``model`` with random weights, imported into a Network."""
    import torchvision

    from deeptoolbox.interop import from_torch

    module = getattr(torchvision.models, model)(weights=None).eval()
    return from_torch(module, torch.zeros(1, 3, 224, 224))


def _head(net) -> str:
    return next(n for n in reversed(net.layer_names) if type(net.layer(n)).__name__ == "Dense")


def server_times(net, rounds: int) -> tuple[float, float]:
    """Median seconds of ``GET /api/graph`` and of one edit through the API."""
    from fastapi.testclient import TestClient

    from deeptoolbox.apps import AppOptions, DesignerSession, create_app

    options = AppOptions(root=tempfile.mkdtemp())
    client = TestClient(create_app(DesignerSession(net.copy() if hasattr(net, "copy") else net),
                                   options), headers={"X-Deeptoolbox-Token": options.token})  # fmt: skip
    graph_times, edit_times = [], []
    for k in range(rounds):
        start = time.perf_counter()
        client.get("/api/graph").raise_for_status()
        graph_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        edit = {"op": "set", "name": _head(net), "config": {"units": 10 + k}}
        client.post("/api/edit", json=edit).raise_for_status()
        edit_times.append(time.perf_counter() - start)
    return statistics.median(graph_times), statistics.median(edit_times)


def browser_times(net, rounds: int) -> tuple[float, list[float]] | None:
    """Seconds to the first complete render, and of each edit made through the page."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return None
    from playwright.sync_api import sync_playwright

    from deeptoolbox.apps import designer

    handle = designer(net, root=tempfile.mkdtemp(), open_browser=False)
    count = len(net.layer_names)
    convs = [n for n in net.layer_names if type(net.layer(n)).__name__ == "Conv2d"]
    conv = convs[len(convs) // 2]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(300_000)
            start = time.perf_counter()
            page.goto(handle.url)
            page.wait_for_function(
                "document.querySelector('[data-testid=canvas]')?.dataset.laidOut === 'true' && "
                f"document.querySelectorAll('.react-flow__minimap-node').length >= {count}"
            )
            render = time.perf_counter() - start
            # a convolution in the middle: on screen once the graph is fitted (the ends may not
            # be, at the smallest zoom); its change re-sizes (and re-checks) every layer after
            page.set_default_timeout(60_000)
            page.get_by_test_id(f"node-{conv}").click()
            field = page.get_by_test_id("prop-filters")
            edits = []
            for k in range(rounds):
                filters = 20 + k
                field.fill(str(filters))
                start = time.perf_counter()
                field.press("Enter")
                page.wait_for_function(
                    "document.querySelector('[data-testid=prop-output-size]').textContent"
                    f".includes('({filters},')"
                )
                edits.append(time.perf_counter() - start)
            browser.close()
    finally:
        handle.close()
    return render, edits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "densenet121"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for model in args.models:
        start = time.perf_counter()
        net = import_network(model)
        print(f"{model}: {len(net.layer_names)} layers, {len(net.connections)} connections, "
              f"imported in {time.perf_counter() - start:.1f} s")  # fmt: skip
        graph, edit = server_times(net, args.rounds)
        print(f"  server: GET /api/graph {graph * 1000:.0f} ms, one edit with fresh analysis "
              f"{edit * 1000:.0f} ms (median of {args.rounds})")  # fmt: skip
        measured = browser_times(net, args.rounds)
        if measured is None:
            print("  browser: skipped (no chromium on PATH)")
            continue
        render, edits = measured
        print(f"  browser: first complete render {render:.2f} s; one edit from the side panel "
              f"to the fresh size shown {statistics.median(edits) * 1000:.0f} ms (median of "
              f"{len(edits)}: {', '.join(f'{e * 1000:.0f}' for e in edits)} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
