"""Pictures of explanations: maps laid over images, heat strips over signals, figure grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import InputSizeError, OptionError

__all__ = ["overlay", "plot_explanations", "explain_digits_figure"]


def _array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().numpy()
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as err:
            raise OptionError(f"`{what}` must be a tensor or an array.") from err
    return value.astype(float)


def _unit(values: np.ndarray) -> np.ndarray:
    low, high = np.nanmin(values), np.nanmax(values)
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _image_rgb(image: Any) -> np.ndarray:
    """(H, W, 3) in [0, 1] from (C, H, W), (H, W, C) with C in {1, 3}, or (H, W)."""
    array = _array(image, "image")
    if array.ndim == 3 and array.shape[0] in (1, 3):  # channels first, as in PyTorch
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise InputSizeError(
            f"overlay: `image` must be (C, H, W) or (H, W, C) with 1 or 3 channels, or (H, W). "
            f"Received size {array.shape}."
        )
    return _unit(array)


def overlay(image: Any, map: Any, *, alpha: float = 0.5, colormap: str = "jet") -> np.ndarray:
    """Lay an explanation map over an image: an RGB array (H, W, 3) with values in [0, 1].

    The image is scaled to [0, 1] (grayscale shown as gray); the map is scaled to [0, 1],
    coloured with the matplotlib ``colormap`` and blended in with weight ``alpha``. A map of
    another size is resized to the image (bilinear).

    Example:
        >>> import torch
        >>> from deeptoolbox.explain import overlay
        >>> picture = overlay(torch.rand(1, 8, 8), torch.rand(8, 8), alpha=0.4)
        >>> picture.shape, float(picture.min()) >= 0, float(picture.max()) <= 1
        ((8, 8, 3), True, True)
    """
    from matplotlib import colormaps

    _check_look(alpha, colormap, "overlay")
    rgb = _image_rgb(image)
    values = _array(map, "map")
    if values.ndim != 2:
        raise InputSizeError(f"overlay: `map` must be (H, W). Received size {values.shape}.")
    if values.shape != rgb.shape[:2]:
        resized = torch.nn.functional.interpolate(
            torch.from_numpy(values)[None, None], size=rgb.shape[:2], mode="bilinear",
            align_corners=False,
        )  # fmt: skip
        values = resized[0, 0].numpy()
    heat = colormaps[colormap](_unit(values))[..., :3]
    return np.clip((1 - alpha) * rgb + alpha * heat, 0.0, 1.0)


def plot_explanations(
    inputs: Any,
    maps: Mapping[str, Any],
    *,
    path: str | Path | None = None,
    labels: Sequence[str] | None = None,
    alpha: float = 0.5,
    colormap: str = "jet",
    cell_size: float = 2.0,
    overlay: bool = True,
    colorbar: bool = True,
):
    """A grid of inputs (rows) x explanation methods (columns), saved as PNG if ``path``.

    Images get the map laid over them (``overlay=True``, as :func:`overlay` blends them) or
    drawn on its own beside the image (``overlay=False``); sequences (N, T, C) or (N, T) are
    drawn as their signal(s) over a heat strip of the map along time (the strip alone with
    ``overlay=False``). With ``colorbar`` each map has a colour bar giving its values (the
    colours span each map's own minimum to maximum).

    Args:
        inputs: images (N, C, H, W) or sequences (N, T, C) / (N, T).
        maps: method name -> maps (N, H, W) or (N, T), e.g. ``{"Grad-CAM": gradcam(...)}``.
        path: where to save the figure (the format follows the suffix; PNG by default). The
            file is written to a temporary name first, then renamed.
        labels: one title per row (e.g. "true 3, predicted 3").
        alpha, colormap: as for :func:`overlay`. cell_size: inches per grid cell.
        overlay: lay each map over its input (True) or draw it alone (False).
        colorbar: add a colour bar with the map's values next to each map.

    Returns:
        The matplotlib Figure (close it with ``matplotlib.pyplot.close(fig)``).

    Example:
        >>> import torch
        >>> from deeptoolbox.explain import plot_explanations
        >>> fig = plot_explanations(torch.rand(2, 1, 8, 8), {"random": torch.rand(2, 8, 8)},
        ...                         colorbar=False)
        >>> len(fig.axes)
        4
    """
    import matplotlib.pyplot as plt

    for option, value in (("overlay", overlay), ("colorbar", colorbar)):
        if not isinstance(value, bool):
            raise OptionError(
                f"plot_explanations: `{option}` must be True or False. Received: {value!r}."
            )
    _check_look(alpha, colormap, "plot_explanations")
    images = _array(inputs, "inputs")
    if not isinstance(maps, Mapping) or not maps:
        raise OptionError("plot_explanations: `maps` must be a non-empty dict: name -> maps.")
    sequence = images.ndim in (2, 3)
    if not sequence and images.ndim != 4:
        raise InputSizeError(
            "plot_explanations: `inputs` must be images (N, C, H, W) or sequences (N, T, C) / "
            f"(N, T). Received size {images.shape}."
        )
    columns = {name: _array(value, f"maps['{name}']") for name, value in maps.items()}
    for name, value in columns.items():
        expected = images.shape[:2] if sequence else (images.shape[0], *images.shape[2:])
        if value.shape != tuple(expected):
            raise InputSizeError(
                f"plot_explanations: maps['{name}'] has size {value.shape}; expected "
                f"{tuple(expected)} to match the inputs {images.shape}."
            )
    if labels is not None and len(labels) != len(images):
        raise OptionError(
            f"plot_explanations: `labels` has {len(labels)} entries for {len(images)} inputs."
        )
    rows, cols = len(images), len(columns) + 1
    width = cell_size * (2 if sequence else 1) * (1.25 if colorbar else 1.0)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, cell_size * rows), squeeze=False)
    look = _Look(alpha, colormap, overlay, colorbar)
    for row in range(rows):
        _draw_row(axes[row], images[row], columns, row, sequence, look)
        if labels is not None:
            axes[row][0].set_title(str(labels[row]), fontsize=9)
    for col, name in enumerate(columns, 1):
        axes[0][col].set_title(name if labels is None else f"{name}\n", fontsize=9)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


@dataclass(frozen=True)
class _Look:
    alpha: float
    colormap: str
    overlay: bool
    colorbar: bool


def _check_look(alpha: Any, colormap: Any, who: str) -> None:
    from matplotlib import colormaps

    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise OptionError(f"{who}: `alpha` must be a number in [0, 1]. Received: {alpha!r}.")
    if colormap not in colormaps:
        raise OptionError(
            f"{who}: `colormap` {colormap!r} is not a matplotlib colormap; e.g. 'jet', "
            "'viridis', 'inferno', 'coolwarm'."
        )


def _limits(values: np.ndarray) -> tuple[float, float]:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _add_colorbar(ax, mappable) -> None:
    bar = ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03, format="%.3g")
    bar.ax.tick_params(labelsize=6)


def _draw_row(axes, item, columns, row, sequence, look: _Look) -> None:
    if sequence:
        _draw_sequence_row(axes, item, columns, row, look)
        return
    rgb = _image_rgb(item)
    axes[0].imshow(rgb)
    axes[0].axis("off")
    for ax, values in zip(axes[1:], columns.values(), strict=True):
        low, high = _limits(values[row])
        if look.overlay:
            ax.imshow(rgb)
        mappable = ax.imshow(values[row], cmap=look.colormap, vmin=low, vmax=high,
                             alpha=look.alpha if look.overlay else None)  # fmt: skip
        ax.axis("off")
        if look.colorbar:
            _add_colorbar(ax, mappable)


def _draw_sequence_row(axes, item, columns, row, look: _Look) -> None:
    signal = item if item.ndim == 2 else item[:, None]
    axes[0].plot(signal, linewidth=0.8)
    axes[0].set_xlim(0, len(signal) - 1)
    low, high = float(signal.min()), float(signal.max())
    pad = 0.05 * (high - low or 1.0)
    for ax, values in zip(axes[1:], columns.values(), strict=True):
        vmin, vmax = _limits(values[row])
        mappable = ax.imshow(values[row][None, :], aspect="auto", cmap=look.colormap,
                             alpha=look.alpha if look.overlay else None, vmin=vmin, vmax=vmax,
                             extent=(0, len(signal) - 1, low - pad, high + pad), origin="lower")  # fmt: skip
        if look.overlay:
            ax.plot(signal, color="black", linewidth=0.8)
        ax.set_xlim(0, len(signal) - 1)
        ax.set_yticks([])
        if look.colorbar:
            _add_colorbar(ax, mappable)


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure atomically (temporary file, then rename)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format=fmt, dpi=100)
    return path


def explain_digits_figure(
    net: nn.Module,
    images: Any,
    labels: Sequence[Any] | None,
    path: str | Path,
    *,
    mask_size: int | str = "auto",
) -> Path:
    """Explain a few images with Grad-CAM and occlusion and save the picture (the demo's).

    Rows are the images, titled with the true label (if given) and the predicted class;
    columns are the image, its Grad-CAM map and its occlusion map, both for the predicted
    class.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import explain_digits_figure
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(), L.GlobalAvgPool(),
        ...                L.Dense(10), L.Softmax()], classes=[str(d) for d in range(10)])
        >>> out = explain_digits_figure(net, torch.rand(3, 1, 8, 8), [1, 2, 3],
        ...                             Path(tempfile.mkdtemp()) / "explain.png")
        >>> out.stat().st_size > 0
        True
    """
    import matplotlib.pyplot as plt

    from deeptoolbox.explain._common import evaluation, prepare, run
    from deeptoolbox.explain._gradcam import gradcam
    from deeptoolbox.explain._occlusion import occlusion_sensitivity

    prepared = prepare("explain_digits_figure", net, images)
    with evaluation(net), torch.no_grad():
        predicted = run("explain_digits_figure", net, prepared.x).argmax(-1).cpu().tolist()
    classes = getattr(net, "classes", None)
    names = [classes[p] if classes else str(p) for p in predicted]
    if labels is not None and len(labels) != len(names):
        raise OptionError(
            f"explain_digits_figure: `labels` has {len(labels)} entries for {len(names)} images."
        )
    titles = [
        f"true {_label(t, classes)}, predicted {n}" if labels is not None else f"predicted {n}"
        for t, n in zip(labels if labels is not None else names, names, strict=True)
    ]
    maps = {
        "Grad-CAM": gradcam(net, prepared.x, predicted),
        "occlusion": occlusion_sensitivity(net, prepared.x, predicted, mask_size=mask_size),
    }
    fig = plot_explanations(prepared.x, maps, path=path, labels=titles)
    plt.close(fig)
    return Path(path)


def _label(value: Any, classes: Sequence[str] | None) -> str:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if classes and isinstance(value, int | np.integer) and 0 <= int(value) < len(classes):
        return str(classes[int(value)])
    return str(value)
