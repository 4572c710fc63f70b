"""Input layers: declared sizes, accepted batches and MATLAB-style normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeptoolbox.errors import NotInitializedError, OptionError, SizeMismatchError
from deeptoolbox.layers import FeatureInput, ImageInput, SequenceInput, VolumeInput

USES = {
    "zerocenter": ("mean",),
    "zscore": ("mean", "std"),
    "rescale-symmetric": ("min", "max"),
    "rescale-zero-one": ("min", "max"),
}
MODES = sorted(USES)

# (make layer, batch size, axes reduced for "channel" statistics)
KINDS = {
    "features": (lambda **o: FeatureInput(3, **o), (40, 3), (0,)),
    "sequences": (lambda **o: SequenceInput(3, length=6, **o), (40, 6, 3), (0, 1)),
    "images": (lambda **o: ImageInput((3, 4, 5), **o), (40, 3, 4, 5), (0, 2, 3)),
    "volumes": (lambda **o: VolumeInput((3, 2, 4, 3), **o), (40, 3, 2, 4, 3), (0, 2, 3, 4)),
}


def _statistics(data: np.ndarray, axes: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {
        "mean": data.mean(axis=axes, keepdims=True),
        "std": data.std(axis=axes, keepdims=True),
        "min": data.min(axis=axes, keepdims=True),
        "max": data.max(axis=axes, keepdims=True),
    }


def _normalize(x: np.ndarray, mode: str, s: dict[str, np.ndarray]) -> np.ndarray:
    if mode == "zerocenter":
        return x - s["mean"]
    if mode == "zscore":
        return (x - s["mean"]) / s["std"]
    unit = (x - s["min"]) / (s["max"] - s["min"])
    return unit * 2 - 1 if mode == "rescale-symmetric" else unit


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dimension", ["auto", "channel", "element", "all"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_normalization_matches_numpy(kind, dimension, mode):
    make, size, channel_axes = KINDS[kind]
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 3.0, size=size[1:])  # statistics differ per element
    data = (rng.normal(size=size) * scale + rng.normal(size=size[1:])).astype(np.float32)
    layer = make(normalization=mode, normalization_dimension=dimension)
    assert not layer.has_statistics
    layer.compute_statistics(torch.from_numpy(data))
    assert layer.has_statistics
    axes = {
        "auto": channel_axes,
        "channel": channel_axes,
        "element": (0,),
        "all": tuple(range(data.ndim)),
    }[dimension]
    expected_stats = _statistics(data.astype(np.float64), axes)
    for key in USES[mode]:
        got, want = getattr(layer, key).numpy(), expected_stats[key]
        assert got.size == want.size
        np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-5, atol=1e-6)
    new = (rng.normal(size=size) * 2).astype(np.float32)
    output = layer(torch.from_numpy(new)).numpy()
    np.testing.assert_allclose(output, _normalize(new, mode, expected_stats), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_statistic_sizes(kind):
    make, size, _ = KINDS[kind]
    channel = make(normalization="zerocenter").mean.shape
    assert channel == ((3,) if len(size) <= 3 else (3,) + (1,) * (len(size) - 2))
    assert make(normalization="zscore", normalization_dimension="element").std.shape == size[1:]
    assert make(normalization="rescale-zero-one", normalization_dimension="all").min.shape == ()


def test_no_normalization_is_identity():
    layer = ImageInput((1, 2, 2))
    assert layer.is_identity
    assert layer.output_shape([]) == (1, 2, 2)
    x = torch.randn(3, 1, 2, 2)
    assert layer(x) is x
    assert not ImageInput((1, 2, 2), normalization="zerocenter", mean=0.0).is_identity


def test_statistics_given_in_the_constructor():
    layer = FeatureInput(3, normalization="zscore", mean=[0, 1, 2], std=2.0)
    assert layer.has_statistics
    assert layer.std.tolist() == [2.0, 2.0, 2.0]
    x = torch.tensor([[2.0, 3.0, 4.0], [0.0, 1.0, 2.0]])
    assert layer(x).tolist() == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]

    image = ImageInput(
        (2, 2, 2), normalization="rescale-zero-one", min=[0, 1], max=np.array([2, 5])
    )
    x = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    torch.testing.assert_close(image(x), torch.full((1, 2, 2, 2), 0.5))
    assert image.get_config()["max"] == [2.0, 5.0]

    everything = FeatureInput(
        3, normalization="zerocenter", normalization_dimension="all", mean=[2]
    )
    assert everything.mean.shape == () and float(everything.mean) == 2.0
    element = ImageInput(
        (1, 2, 2), normalization="zerocenter", normalization_dimension="element", mean=[1, 2, 3, 4]
    )
    torch.testing.assert_close(
        element(torch.zeros(1, 1, 2, 2)), -torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    )


def test_statistics_survive_a_state_dict_round_trip():
    layer = SequenceInput(2, normalization="zscore")
    data = torch.randn(10, 7, 2) * 3 + 1
    layer.compute_statistics(data)
    clone = SequenceInput(2, normalization="zscore")
    assert not clone.has_statistics
    clone.load_state_dict(layer.state_dict())
    assert clone.has_statistics
    torch.testing.assert_close(clone(data), layer(data))
    torch.testing.assert_close(clone(data).mean(dim=(0, 1)), torch.zeros(2), atol=1e-5, rtol=0)


def test_forward_without_statistics_names_the_layer():
    layer = ImageInput((1, 4, 4), normalization="zscore", name="pictures")
    with pytest.raises(NotInitializedError, match="ImageInput 'pictures'") as info:
        layer(torch.zeros(1, 1, 4, 4))
    assert "compute_statistics" in str(info.value)
    assert "'mean', 'std'" in str(info.value)
    layer.compute_statistics(torch.randn(5, 1, 4, 4))
    assert layer(torch.zeros(1, 1, 4, 4)).shape == (1, 1, 4, 4)


def test_compute_statistics_checks_the_size():
    layer = ImageInput((3, 4, 4), normalization="zerocenter")
    with pytest.raises(SizeMismatchError, match=r"N x C x H x W.*\(5, 3, 4, 5\)"):
        layer.compute_statistics(torch.zeros(5, 3, 4, 5))
    layer.compute_statistics(torch.ones(3, 4, 4))  # one observation
    assert layer.mean.flatten().tolist() == [1.0, 1.0, 1.0]


def test_one_channel_sequences_accept_n_by_t_batches():
    layer = SequenceInput(1, normalization="zerocenter")
    assert layer.shape == (None, 1)
    assert layer.accepts((9,)) and layer.accepts((9, 1))
    assert not layer.accepts((9, 2))
    tokens = torch.arange(12.0).reshape(3, 4)
    layer.compute_statistics(tokens)  # (N, T), as forward takes it
    assert layer.mean.tolist() == [5.5]
    y = layer(tokens)
    assert y.shape == (3, 4, 1)
    torch.testing.assert_close(y, (tokens - 5.5).unsqueeze(-1))
    plain = SequenceInput(1)
    assert plain(tokens).shape == (3, 4, 1)
    assert not plain.is_identity  # it adds the channel axis
    assert SequenceInput(2).is_identity


def test_accepts():
    assert FeatureInput(4).accepts((4,))
    assert not FeatureInput(4).accepts((5,))
    image = ImageInput((3, 8, 8))
    assert image.accepts((3, 8, 8))
    assert (
        not image.accepts((3, 8, 9)) and not image.accepts((3, 8)) and not image.accepts((8, 8, 3))
    )
    assert VolumeInput((1, 2, 3, 4)).accepts((1, 2, 3, 4))
    assert SequenceInput(4).accepts((17, 4)) and SequenceInput(4).accepts((1, 4))
    assert not SequenceInput(4).accepts((17, 3))
    assert SequenceInput(4, length=10).accepts((10, 4))
    assert not SequenceInput(4, length=10).accepts((11, 4))


def test_declared_sizes_and_descriptions():
    assert FeatureInput(5).shape == (5,)
    assert ImageInput([3, 32, 32]).shape == (3, 32, 32)
    assert VolumeInput((1, 8, 16, 16)).output_shape([]) == (1, 8, 16, 16)
    assert SequenceInput(12).shape == (None, 12)
    assert SequenceInput(1, length=50).output_shape([]) == (50, 1)
    assert ImageInput((1, 8, 8)).describe_input() == (
        "images of size N x C x H x W with C x H x W = 1 x 8 x 8"
    )
    assert "T x 12" in SequenceInput(12).describe_input()
    for layer in (FeatureInput(2), ImageInput((1, 2, 2)), SequenceInput(3)):
        assert layer.input_names == ()


def test_statistic_option_errors():
    with pytest.raises(OptionError, match="mean given, but normalization='none'"):
        FeatureInput(3, mean=[1, 2, 3])
    with pytest.raises(OptionError, match="std given, but normalization='zerocenter'"):
        FeatureInput(3, normalization="zerocenter", std=1.0)
    with pytest.raises(OptionError, match=r"`mean` has 2 values.*needs one value or 3"):
        FeatureInput(3, normalization="zerocenter", mean=[1, 2])
    with pytest.raises(OptionError, match="normalization_dimension='element' needs a fixed"):
        SequenceInput(3, normalization="zscore", normalization_dimension="element")


def test_a_single_statistic_value_makes_a_dense_buffer():
    """One mean/std value fills real memory: ExecuTorch and other runtimes refuse stride 0."""
    layer = ImageInput((1, 8, 8), normalization="zscore", mean=0.5, std=0.25)
    for buffer in (layer.mean, layer.std):
        assert 0 not in buffer.stride() and buffer.numel() == 1
    assert float(layer.mean) == 0.5 and float(layer.std) == 0.25


def test_a_tensor_input_with_free_sizes_says_any_size_in_its_error():
    from deeptoolbox import Network
    from deeptoolbox.errors import InputSizeError
    from deeptoolbox.layers import ReLU, TensorInput

    net = Network([TensorInput((1, None, None), name="input"), ReLU()])
    assert net(torch.rand(2, 1, 5, 7)).shape == (2, 1, 5, 7)
    with pytest.raises(
        InputSizeError, match=r"N x \(1, any, any\); received a batch of size \(2, 3, 5, 7\)"
    ):
        net(torch.rand(2, 3, 5, 7))
