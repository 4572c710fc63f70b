"""Deep dream raises the chosen channels; overlays and figures are right and reload."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import InputSizeError, LayerNotFoundError, OptionError
from deeptoolbox.explain import deep_dream, explain_digits_figure, overlay, plot_explanations

matplotlib.use("Agg")


def conv_net() -> Network:
    torch.manual_seed(0)
    return Network([
        L.ImageInput((1, 16, 16), name="image"), L.Conv2d(6, 3, padding="same", name="conv"),
        L.ReLU(name="relu"), L.GlobalAvgPool(name="gap"), L.Dense(3, name="fc"), L.Softmax(),
    ], classes=["a", "b", "c"])  # fmt: skip


def channel_mean(net, name, x, channel):
    activation = {}
    handle = net.layer(name).register_forward_hook(lambda m, i, o: activation.update(a=o))
    with torch.no_grad():
        net.eval()(x)
    handle.remove()
    a = activation["a"]
    return (a.mean((2, 3)) if a.dim() == 4 else a)[:, channel]


@pytest.mark.parametrize(("layer", "channels"), [("relu", [1, 4]), ("fc", [2])])
def test_deep_dream_raises_the_chosen_channels(layer, channels):
    net = conv_net()
    start = torch.rand(len(channels), 1, 16, 16, generator=torch.Generator().manual_seed(0))
    dreams = deep_dream(net, layer, channels, iterations=10, octaves=2, rescale=False)
    assert dreams.shape == (len(channels), 1, 16, 16)
    for k, channel in enumerate(channels):
        before = channel_mean(net, layer, start[k : k + 1], channel)
        after = channel_mean(net, layer, dreams[k : k + 1], channel)
        assert after > before + 0.5 * before.abs() + 0.1
    scaled = deep_dream(net, layer, channels, iterations=2)
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == 1.0


def test_deep_dream_on_sequences_and_errors():
    torch.manual_seed(0)
    seq = Network([L.SequenceInput(2, length=20), L.Conv1d(4, 3, padding="same", name="conv")])
    assert deep_dream(seq, "conv", 3, iterations=2).shape == (1, 20, 2)
    with pytest.raises(OptionError, match=r"channel 9 does not exist.*4 channels"):
        deep_dream(seq, "conv", [9], iterations=1)
    with pytest.raises(LayerNotFoundError, match="conv9"):
        deep_dream(seq, "conv9", 0)
    with pytest.raises(OptionError, match="`channels` must be"):
        deep_dream(seq, "conv", [])
    free = Network([L.SequenceInput(2), L.Conv1d(4, 3, padding="same", name="conv")])
    with pytest.raises(OptionError, match="pass `initial=`"):
        deep_dream(free, "conv", 0)
    assert deep_dream(free, "conv", 0, initial=torch.rand(12, 2), iterations=1).shape == (1, 12, 2)


def test_overlay_blends_image_and_colormap():
    image = torch.rand(1, 6, 6)
    values = torch.rand(6, 6)
    gray = (image[0] - image.min()) / (image.max() - image.min())
    plain = overlay(image, values, alpha=0.0)
    np.testing.assert_allclose(plain, np.repeat(gray.numpy()[..., None], 3, -1), atol=1e-6)
    unit = (values - values.min()) / (values.max() - values.min())
    heat = overlay(image, values, alpha=1.0, colormap="viridis")
    np.testing.assert_allclose(heat, colormaps["viridis"](unit.numpy())[..., :3], atol=1e-6)
    assert overlay(torch.rand(3, 8, 8), torch.rand(4, 4)).shape == (8, 8, 3)  # map resized
    with pytest.raises(OptionError, match="`alpha`"):
        overlay(image, values, alpha=2)
    with pytest.raises(OptionError, match="not a matplotlib colormap"):
        overlay(image, values, colormap="rainbowz")
    with pytest.raises(InputSizeError, match="`map` must be"):
        overlay(image, torch.rand(6))


def test_plot_explanations_writes_png_for_images_and_sequences(tmp_path):
    import matplotlib.pyplot as plt

    path = tmp_path / "grid.png"
    fig = plot_explanations(torch.rand(3, 1, 8, 8), {"A": torch.rand(3, 8, 8),
                            "B": torch.rand(3, 8, 8)}, path=path, labels=["x", "y", "z"],
                            colorbar=False)  # fmt: skip
    assert len(fig.axes) == 9
    plt.close(fig)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size == (600, 600)  # 3 x 3 cells of 2 in
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temporary left
    fig = plot_explanations(torch.randn(2, 50, 3), {"strip": torch.rand(2, 50)},
                            path=tmp_path / "signals.png")  # fmt: skip
    assert len(fig.axes[1].images) == 1 and len(fig.axes[1].lines) == 3
    plt.close(fig)
    with pytest.raises(InputSizeError, match=r"maps\['A'\] has size"):
        plot_explanations(torch.rand(2, 1, 8, 8), {"A": torch.rand(2, 4, 4)})
    with pytest.raises(OptionError, match="`labels` has 1 entries"):
        plot_explanations(torch.rand(2, 1, 8, 8), {"A": torch.rand(2, 8, 8)}, labels=["a"])


def test_explain_digits_figure(tmp_path):
    net = Network([
        L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(), L.MaxPool2d(2), L.Flatten(),
        L.Dense(10), L.Softmax(),
    ], classes=[str(d) for d in range(10)])  # fmt: skip
    path = explain_digits_figure(net, torch.rand(4, 1, 8, 8), torch.tensor([1, 2, 3, 4]),
                                 tmp_path / "out" / "digits.png")  # fmt: skip
    with Image.open(path) as picture:
        assert picture.format == "PNG"
