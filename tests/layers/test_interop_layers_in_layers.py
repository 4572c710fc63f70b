"""The layers imported networks use (issue 12 item 4) live in deeptoolbox.layers; old names and
old files keep working."""

import json
import warnings

import pytest
import torch

import deeptoolbox as dtb
import deeptoolbox.interop as interop
from deeptoolbox import layers as L
from deeptoolbox.errors import SizeMismatchError

MOVED = ["TensorInput", "PaddingMask", "MaskedSteps", "CrossAttention",
         "AvgPoolExcludingPadding", "AxisLayerNorm", "StochasticDepth", "ModeSwitch"]  # fmt: skip


@pytest.mark.parametrize("name", MOVED)
def test_moved_layers_are_public_in_layers_and_still_reached_through_interop(name):
    cls = getattr(L, name)
    assert name in L.__all__ and name in interop.__all__
    assert getattr(interop, name) is cls
    assert cls.__module__.startswith("deeptoolbox.layers.")
    assert L.registered_layer(name) is cls


def _sequences_and_mask() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1], [1, 0, 1, 0, 1]])
    return x, mask


def test_global_avg_pool_with_a_padding_mask_averages_the_real_steps_only():
    x, mask = _sequences_and_mask()
    y = L.GlobalAvgPool(has_padding_mask=True)(x, mask)
    expected = torch.stack([x[i, mask[i].bool()].mean(0) for i in range(3)])
    torch.testing.assert_close(y, expected)
    y3 = L.GlobalAvgPool(has_padding_mask=True)(x, mask.unsqueeze(-1).float())  # (N, T, 1)
    torch.testing.assert_close(y3, expected)
    assert torch.isnan(L.GlobalAvgPool(has_padding_mask=True)(x[:1], torch.zeros(1, 5))).all()


def test_global_avg_pool_ports_sizes_and_config():
    plain, masked = L.GlobalAvgPool(), L.GlobalAvgPool(has_padding_mask=True)
    assert dtb.network._shapes.input_ports(plain) == ("in",)
    assert masked.input_names == ("in", "mask")
    assert masked.output_shape([(None, 4), (None,)]) == (4,)
    assert plain.output_shape([(4, 6, 6)]) == (4,)
    with pytest.raises(SizeMismatchError, match="mask input must be"):
        masked.output_shape([(None, 4), (None, 3)])
    with pytest.raises(SizeMismatchError, match="sequences"):
        masked.output_shape([(4, 6, 6), (6,)])
    assert L.GlobalAvgPool.from_config(masked.get_config()).has_padding_mask
    assert repr(masked) == "GlobalAvgPool(has_padding_mask=True)"


def _masked_network() -> dtb.Network:
    net = dtb.Network(name="masked")
    with net.editing():
        net.add_layers([L.SequenceInput(4, name="x"), L.Dense(3, name="fc"),
                        L.GlobalAvgPool(has_padding_mask=True, name="pool")])  # fmt: skip
        net.add_layers({"mask": L.PaddingMask(over_channels=True)})
        net.connect("x", "mask")
        net.connect("mask", "pool/mask")
    return net


def _write_the_old_way(folder) -> None:
    """What deeptoolbox wrote before GlobalAvgPool took a mask: a MaskedGlobalAvgPool record."""
    path = folder / "network.json"
    description = json.loads(path.read_text())
    (record,) = [r for r in description["layers"] if r["name"] == "pool"]
    record.update(type="MaskedGlobalAvgPool", config={})
    path.write_text(json.dumps(description))


def test_a_network_saved_with_the_old_masked_global_avg_pool_loads(tmp_path):
    net = _masked_network().eval()
    folder = dtb.save(net, tmp_path / "net")
    _write_the_old_way(folder)
    assert '"type": "MaskedGlobalAvgPool"' in (folder / "network.json").read_text()
    loaded = dtb.load(folder).eval()
    pool = loaded.layer("pool")
    assert type(pool) is L.GlobalAvgPool and pool.has_padding_mask
    x = torch.randn(2, 6, 4)
    x[0, 4:] = 0.0  # padding in the first sequence
    torch.testing.assert_close(loaded(x), net(x))
    assert loaded.sources("pool") == {"in": "fc", "mask": "mask"}


def test_the_old_json_text_loads_through_from_json_too():
    text = (
        _masked_network()
        .to_json()
        .replace(
            '"type": "GlobalAvgPool",\n      "config": {\n        "has_padding_mask": true\n      }',
            '"type": "MaskedGlobalAvgPool",\n      "config": {}',
        )
    )
    assert "MaskedGlobalAvgPool" in text
    pool = dtb.Network.from_json(text).layer("pool")
    assert type(pool) is L.GlobalAvgPool and pool.has_padding_mask


def test_masked_global_avg_pool_name_warns_and_gives_the_new_layer():
    with pytest.warns(DeprecationWarning, match=r"GlobalAvgPool\(has_padding_mask=True\)"):
        layer = interop.MaskedGlobalAvgPool(name="pool")
    assert type(layer) is L.GlobalAvgPool and layer.has_padding_mask and layer.name == "pool"


def test_a_users_own_class_registered_under_the_old_name_wins():
    @L.register_layer(name="MaskedGlobalAvgPool")
    class Mine(L.Layer):
        input_names = ("in", "mask")

        def output_shape(self, input_shapes):
            return (input_shapes[0][1],)

        def forward(self, x, mask):
            return x.sum(1)

    try:
        text = (
            _masked_network()
            .to_json()
            .replace(
                '"type": "GlobalAvgPool",\n      "config": {\n        "has_padding_mask": true\n',
                '"type": "MaskedGlobalAvgPool",\n      "config": {\n',
            )
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert type(dtb.Network.from_json(text).layer("pool")) is Mine
    finally:
        L._base._REGISTRY.pop("MaskedGlobalAvgPool")
