"""plot_network(): a drawing of the layer graph with matplotlib."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import OptionError
from deeptoolbox.layers._base import format_shape, layer_type_name
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._network import Network

_COLORS = {
    "input": "#cfe8ff",
    "learnable": "#ffe2b8",
    "combine": "#e3d4f5",
    "other": "#e9ecef",
    "problem": "#ffc9c9",
}


def _depths(net: Network) -> dict[str, int]:
    depth: dict[str, int] = {}
    for name in net.execution_order:
        sources = [s for s in net.sources(name).values() if s is not None and s in depth]
        depth[name] = 1 + max((depth[s] for s in sources), default=-1)
    top = max(depth.values(), default=-1) + 1
    for name in net.layer_names:  # layers on a cycle are drawn at the bottom
        depth.setdefault(name, top)
    return depth


def _color(net: Network, name: str) -> str:
    module = net.layers[name]
    if any(i.layer == name and i.severity == "error" for i in net.issues):
        return _COLORS["problem"]
    if isinstance(module, InputLayer):
        return _COLORS["input"]
    if len(net.sources(name)) > 1:
        return _COLORS["combine"]
    if any(True for _ in module.parameters()):
        return _COLORS["learnable"]
    return _COLORS["other"]


def plot_network(
    net: Network, path: str | os.PathLike | None = None, *, show_sizes: bool = True
) -> Any:
    """Draw the layer graph top to bottom; save it as PNG when ``path`` is given.

    Boxes show each layer's name, type and output size; layers with errors are red.
    Returns the matplotlib Figure. Needs matplotlib (``pip install deeptoolbox[plot]``).

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(2)])
        >>> figure = plot_network(net, os.path.join(tempfile.mkdtemp(), "net.png"))
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is in the test extras
        raise OptionError(
            "plot_network needs matplotlib: pip install 'deeptoolbox[plot]'."
        ) from err
    if not isinstance(net, Network):
        raise OptionError(f"plot_network expects a Network. Received: {type(net).__name__}.")
    depth = _depths(net)
    rows: dict[int, list[str]] = {}
    for name in net.layer_names:
        rows.setdefault(depth[name], []).append(name)
    width = max((len(r) for r in rows.values()), default=1)
    position = {}
    for level, names in rows.items():
        for i, name in enumerate(names):
            position[name] = (i - (len(names) - 1) / 2, -level)
    figure, axes = plt.subplots(figsize=(max(4.0, 3.2 * width), max(3.0, 1.1 * len(rows))))
    for connection in net.connections:
        (x0, y0), (x1, y1) = position[connection.source], position[connection.destination]
        axes.annotate(
            "", xy=(x1, y1 + 0.22), xytext=(x0, y0 - 0.22),
            arrowprops={"arrowstyle": "->", "color": "#555555", "lw": 1.0},
        )  # fmt: skip
    for name, (x, y) in position.items():
        label = f"{name}\n{layer_type_name(net.layers[name])}"
        if show_sizes:
            label += f"  {format_shape(net.output_shape(name))}"
        axes.text(
            x, y, label, ha="center", va="center", fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": _color(net, name), "edgecolor": "#444444"},
        )  # fmt: skip
    axes.set_xlim(-width / 2 - 0.3, width / 2 + 0.3)
    axes.set_ylim(-len(rows) + 0.4, 0.6)
    axes.axis("off")
    axes.set_title(f"Network '{net.name}'")
    figure.tight_layout()
    if path is not None:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
        plt.close(figure)
    return figure
