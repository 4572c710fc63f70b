"""plot_explanations: colour bars with the maps' values, maps over the image or on their own."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from deeptoolbox.errors import OptionError
from deeptoolbox.explain import plot_explanations


def maps(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {"A": torch.rand(2, 6, 6, generator=generator) * 4 - 1,
            "B": torch.rand(2, 6, 6, generator=generator) * 0.01}  # fmt: skip


def test_each_map_gets_a_colour_bar_spanning_its_values():
    values = maps()
    fig = plot_explanations(torch.rand(2, 1, 6, 6), values)
    grid, bars = fig.axes[:6], fig.axes[6:]
    assert len(bars) == 4  # one per map cell (2 inputs x 2 methods)
    for row in range(2):
        for column, name in enumerate(values, 1):
            image = grid[row * 3 + column].images[-1]
            low, high = image.get_clim()
            assert low == pytest.approx(float(values[name][row].min()), rel=1e-6)
            assert high == pytest.approx(float(values[name][row].max()), rel=1e-6)
            assert image.colorbar is not None
            assert image.colorbar.ax in bars
    plt.close(fig)
    fig = plot_explanations(torch.rand(2, 1, 6, 6), values, colorbar=False)
    assert len(fig.axes) == 6
    plt.close(fig)


def test_overlay_lays_the_map_over_the_image_or_draws_it_alone(tmp_path):
    values, images = maps(), torch.rand(2, 1, 6, 6)
    over = plot_explanations(images, values, alpha=0.4, colorbar=False)
    cell = over.axes[1]
    assert len(cell.images) == 2 and cell.images[-1].get_alpha() == 0.4
    shown = images[0, 0].numpy()
    shown = (shown - shown.min()) / (shown.max() - shown.min())  # the image, scaled to [0, 1]
    np.testing.assert_allclose(cell.images[0].get_array()[..., 0], shown, atol=1e-6)
    plt.close(over)
    alone = plot_explanations(images, values, overlay=False, colorbar=False, colormap="viridis",
                              path=tmp_path / "alone.png")  # fmt: skip
    cell = alone.axes[1]
    assert len(cell.images) == 1 and cell.images[0].get_alpha() is None
    np.testing.assert_allclose(cell.images[0].get_array(), values["A"][0].numpy(), rtol=1e-6)
    plt.close(alone)
    with Image.open(tmp_path / "alone.png") as picture:  # the map's own colours, unblended
        pixels = np.asarray(picture.convert("RGB"), dtype=float) / 255
    box = cell.get_window_extent()
    height = pixels.shape[0]
    x, y = int(box.x0 + box.width / 12), int(height - (box.y1 - box.height / 12))  # cell (0, 0)
    a = values["A"][0].numpy()
    expected = colormaps["viridis"]((a[0, 0] - a.min()) / (a.max() - a.min()))[:3]
    np.testing.assert_allclose(pixels[y, x], expected, atol=2 / 255)


def test_sequences_without_overlay_show_the_strip_alone():
    fig = plot_explanations(torch.randn(2, 40, 2), {"s": torch.rand(2, 40)}, overlay=False)
    assert len(fig.axes[1].lines) == 0 and len(fig.axes[1].images) == 1
    assert len(fig.axes) == 4 + 2  # two rows of (signal, strip) and two colour bars
    plt.close(fig)
    fig = plot_explanations(torch.randn(2, 40, 2), {"s": torch.rand(2, 40)})
    assert len(fig.axes[1].lines) == 2
    plt.close(fig)


def test_bad_picture_options_are_named():
    with pytest.raises(OptionError, match="`overlay` must be True or False"):
        plot_explanations(torch.rand(1, 1, 4, 4), {"A": torch.rand(1, 4, 4)}, overlay="yes")
    with pytest.raises(OptionError, match="`colorbar` must be True or False"):
        plot_explanations(torch.rand(1, 1, 4, 4), {"A": torch.rand(1, 4, 4)}, colorbar=1)
    with pytest.raises(OptionError, match="`alpha`"):
        plot_explanations(torch.rand(1, 1, 4, 4), {"A": torch.rand(1, 4, 4)}, alpha=3)


def test_explaining_a_read_only_numpy_array_gives_no_torch_warning():
    import warnings

    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.explain import gradcam

    torch.manual_seed(0)
    net = Network([L.ImageInput((1, 6, 6)), L.Conv2d(2, 3, padding=1, name="conv"), L.ReLU(),
                   L.GlobalAvgPool(), L.Dense(2), L.Softmax()])  # fmt: skip
    x = np.random.default_rng(0).random((2, 1, 6, 6)).astype(np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        maps = gradcam(net, x, 0, layer="conv")
    torch.testing.assert_close(maps, gradcam(net, torch.from_numpy(x.copy()), 0, layer="conv"))
