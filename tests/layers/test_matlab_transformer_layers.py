"""The transformer and data-manipulation layers of MATLAB's list that issue 13 added:
PatchEmbedding, SinusoidalPositionEncoding, Attention, EmbeddingConcatenation, Indexing1d and
FunctionLayer (NetworkLayer: tests/network/test_network_layer.py).

Each is compared with a reference computed another way (numpy loops and formulas,
torch.nn.MultiheadAttention, torch convolutions) and checked inside a Network: sizes,
analyze rows, save/load, to_python.
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deeptoolbox import Network, analyze, load, save, to_python
from deeptoolbox import layers as L
from deeptoolbox.errors import NetworkFileError, OptionError, SizeMismatchError

RNG = np.random.default_rng(13)


def _data(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _run(layer: L.Layer, *xs: np.ndarray) -> np.ndarray:
    if not layer.is_built:
        layer.build([x.shape[1:] for x in xs])
    with torch.no_grad():
        return layer.eval()(*(torch.from_numpy(x) for x in xs)).numpy()


# -- PatchEmbedding ------------------------------------------------------------------------------


def test_patch_embedding_images_are_a_linear_map_of_each_patch_in_row_major_order():
    layer = L.PatchEmbedding((2, 3), 5)
    x = _data(2, 3, 4, 6)
    y = _run(layer, x)
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    want = np.empty((2, 4, 5), dtype=np.float64)
    for n in range(2):
        token = 0
        for row in range(0, 4, 2):  # row of patches after row of patches
            for col in range(0, 6, 3):
                patch = x[n, :, row : row + 2, col : col + 3]
                want[n, token] = np.einsum("ochw,chw->o", weight, patch) + bias
                token += 1
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert layer.output_shape([(3, 4, 6)]) == (4, 5)


def test_patch_embedding_volumes_and_sequences_match_strided_convolutions():
    volume = L.PatchEmbedding(2, 4)
    x = torch.randn(2, 3, 4, 2, 6)
    volume.build([tuple(x.shape[1:])])
    want = F.conv3d(x, volume.weight, volume.bias, stride=2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(volume(x), want)
    assert volume.output_shape([(3, 4, 2, 6)]) == (6, 4)
    sequence = L.PatchEmbedding(3, 2)
    sequence.build([(None, 4)])
    s = torch.randn(2, 9, 4)
    want = F.conv1d(s.transpose(1, 2), sequence.weight, sequence.bias, stride=3).transpose(1, 2)
    torch.testing.assert_close(sequence(s), want)
    assert sequence.output_shape([(None, 4)]) == (None, 2)


def test_patch_embedding_refuses_patches_that_do_not_tile():
    with pytest.raises(SizeMismatchError, match=r"PatchEmbedding: patches of size \(4, 4\)"):
        L.PatchEmbedding(4, 8).output_shape([(3, 10, 8)])
    with pytest.raises(SizeMismatchError, match="2 sizes but the input has 3"):
        L.PatchEmbedding((2, 2), 8).output_shape([(3, 4, 4, 4)])
    with pytest.raises(OptionError, match="`patch_size`"):
        L.PatchEmbedding((2, 0), 8)
    with pytest.raises(OptionError, match="`output_channels`"):
        L.PatchEmbedding(2, 0)


# -- SinusoidalPositionEncoding ------------------------------------------------------------------


def _sinusoids(length: int, channels: int) -> np.ndarray:
    table = np.zeros((length, channels))
    for t in range(length):
        for c in range(channels):
            angle = t / 10000 ** (2 * (c // 2) / channels)
            table[t, c] = math.sin(angle) if c % 2 == 0 else math.cos(angle)
    return table


def test_sinusoidal_position_encoding_matches_the_formula_for_any_length():
    x = _data(2, 9, 6)
    np.testing.assert_allclose(_run(L.SinusoidalPositionEncoding(), x), x + _sinusoids(9, 6),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    alone = L.SinusoidalPositionEncoding(5, combine="none")
    assert alone.output_shape([(None, 6)]) == (None, 5)
    for length in (3, 40):
        y = _run(alone, _data(2, length, 6))
        np.testing.assert_allclose(y, np.broadcast_to(_sinusoids(length, 5), y.shape), atol=1e-5)


def test_sinusoidal_position_encoding_equals_position_embedding_sinusoidal():
    x = torch.randn(2, 7, 8)
    reference = L.PositionEmbedding(7, kind="sinusoidal")
    reference.build([(None, 8)])
    torch.testing.assert_close(L.SinusoidalPositionEncoding()(x), reference(x))
    with pytest.raises(SizeMismatchError, match="combine='add' needs output_channels"):
        L.SinusoidalPositionEncoding(4).output_shape([(None, 8)])


# -- Attention -----------------------------------------------------------------------------------


def _attention_numpy(q, k, v, heads: int, scale: float, keep=None) -> np.ndarray:
    """Heads as channel blocks, softmax(scale q k^T) v per head, written with loops."""
    n, t = q.shape[0], q.shape[1]
    dk, dv = q.shape[2] // heads, v.shape[2] // heads
    out = np.zeros((n, t, v.shape[2]))
    for b in range(n):
        for h in range(heads):
            qh, kh = q[b, :, h * dk : (h + 1) * dk], k[b, :, h * dk : (h + 1) * dk]
            scores = scale * qh.astype(np.float64) @ kh.T
            if keep is not None:
                scores = np.where(keep[b], scores, -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            out[b, :, h * dv : (h + 1) * dv] = weights @ v[b, :, h * dv : (h + 1) * dv]
    return out


def test_attention_matches_loops_with_heads_scale_causal_and_padding():
    q, k, v = _data(2, 5, 8), _data(2, 6, 8), _data(2, 6, 4)
    auto = 1 / math.sqrt(8 / 2)
    np.testing.assert_allclose(_run(L.Attention(2), q, k, v), _attention_numpy(q, k, v, 2, auto),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    np.testing.assert_allclose(
        _run(L.Attention(4, scale=0.7), q, k, v), _attention_numpy(q, k, v, 4, 0.7),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    causal = np.tril(np.ones((5, 6), dtype=bool))
    np.testing.assert_allclose(
        _run(L.Attention(2, attention_mask="causal"), q, k, v),
        _attention_numpy(q, k, v, 2, auto, np.broadcast_to(causal, (2, 5, 6))),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    mask = np.ones((2, 6), dtype=np.float32)
    mask[1, 3:] = 0
    keep = np.broadcast_to(mask[:, None, :] > 0, (2, 5, 6)) & causal
    padded = L.Attention(2, attention_mask="causal", has_padding_mask=True)
    np.testing.assert_allclose(_run(padded, q, k, v, mask), _attention_numpy(q, k, v, 2, auto, keep),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def _cross_attention_network(heads: int) -> Network:
    net = Network(name="cross")
    net.add_layers(
        [
            L.SequenceInput(8, name="target"),
            L.Dense(8, name="q"),
            L.Attention(heads, name="attention"),
            L.Dense(8, name="out"),
        ]
    )
    net.add_layers([L.SequenceInput(5, name="memory"), L.Dense(8, name="k")])
    net.add_layers(L.Dense(8, name="v"))
    net.connect("memory", "v").connect("k", "attention/key").connect("v", "attention/value")
    return net


def test_dense_projections_around_attention_are_torch_multihead_attention():
    torch.manual_seed(0)
    net = _cross_attention_network(heads=2).eval()
    reference = torch.nn.MultiheadAttention(8, 2, kdim=5, vdim=5, batch_first=True).eval()
    with torch.no_grad():
        for part, weight, bias in (
            ("q", reference.q_proj_weight, reference.in_proj_bias[:8]),
            ("k", reference.k_proj_weight, reference.in_proj_bias[8:16]),
            ("v", reference.v_proj_weight, reference.in_proj_bias[16:]),
            ("out", reference.out_proj.weight, reference.out_proj.bias),
        ):
            net.layer(part).weight.copy_(weight)
            net.layer(part).bias.copy_(bias)
    target, memory = torch.randn(3, 4, 8), torch.randn(3, 7, 5)
    with torch.no_grad():
        want, _ = reference(target, memory, memory, need_weights=False)
        torch.testing.assert_close(net(target, memory), want, rtol=1e-5, atol=1e-5)
    row = analyze(net).row("attention")
    assert row.output_size == (None, 8) and row.learnables == 0
    assert net.sources("attention") == {"query": "q", "key": "k", "value": "v"}


def test_attention_refuses_sizes_that_do_not_fit():
    attention = L.Attention(3)
    with pytest.raises(SizeMismatchError, match="query input's 8 channels cannot be split"):
        attention.output_shape([(5, 8), (6, 8), (6, 9)])
    with pytest.raises(SizeMismatchError, match="same channel count"):
        L.Attention(2).output_shape([(5, 8), (6, 4), (6, 4)])
    with pytest.raises(SizeMismatchError, match="same length"):
        L.Attention(2).output_shape([(5, 8), (6, 8), (7, 4)])
    with pytest.raises(OptionError, match="`scale`"):
        L.Attention(2, scale="big")
    with pytest.raises(OptionError, match="`attention_mask`"):
        L.Attention(2, attention_mask="upper")


# -- EmbeddingConcatenation and Indexing1d -------------------------------------------------------


def test_embedding_concatenation_prepends_its_learned_token():
    layer = L.EmbeddingConcatenation()
    x = _data(3, 4, 5)
    y = _run(layer, x)
    token = layer.weight.detach().numpy()
    np.testing.assert_array_equal(y, np.concatenate([np.broadcast_to(token, (3, 1, 5)), x], 1))
    assert layer.output_shape([(None, 5)]) == (None, 5)
    assert layer.output_shape([(4, 5)]) == (5, 5)
    layer(torch.from_numpy(x)).sum().backward()
    torch.testing.assert_close(layer.weight.grad, torch.full((5,), 3.0))  # one token per sequence


@pytest.mark.parametrize(("index", "position"), [("first", 0), ("last", 6), (2, 2), (-3, 4)])
def test_indexing1d_picks_one_step(index, position):
    x = _data(2, 7, 3)
    np.testing.assert_array_equal(_run(L.Indexing1d(index), x), x[:, position])


def test_indexing1d_refuses_positions_outside_the_sequence():
    with pytest.raises(SizeMismatchError, match="index 5 is outside sequences of length 4"):
        L.Indexing1d(5).output_shape([(4, 3)])
    assert L.Indexing1d(5).output_shape([(None, 3)]) == (3,)
    with pytest.raises(OptionError, match="`index`"):
        L.Indexing1d("middle")


# -- FunctionLayer -------------------------------------------------------------------------------


def test_function_layer_computes_its_expression_like_torch():
    x = torch.randn(2, 5, 3)
    cases = {
        "x * sigmoid(x)": F.silu(x),
        "clamp(x, min=-0.5, max=0.5) ** 2 + pi": x.clamp(-0.5, 0.5) ** 2 + math.pi,
        "softmax(x, dim=-1)": torch.softmax(x, -1),
        "where(x > 0, x, 0.1 * x)": F.leaky_relu(x, 0.1),
        "x[:, 1:4, ...] - mean(x, dim=(1, 2), keepdim=True)": x[:, 1:4] - x.mean((1, 2), True),
        "transpose(x, 1, 2) @ x": x.transpose(1, 2) @ x,
        "gelu(x, approximate='tanh')": F.gelu(x, approximate="tanh"),
    }
    for expression, want in cases.items():
        layer = L.FunctionLayer(expression)
        torch.testing.assert_close(layer(x), want, msg=expression)


def test_function_layer_size_rule_follows_free_lengths():
    assert L.FunctionLayer("x[:, 0]").output_shape([(None, 4)]) == (4,)
    assert L.FunctionLayer("transpose(x, 1, 2) @ x").output_shape([(None, 4)]) == (4, 4)
    assert L.FunctionLayer("flatten(x, start_dim=1)").output_shape([(2, 3, 3)]) == (18,)
    two = L.FunctionLayer("a * b", inputs=("a", "b"))
    assert two.output_shape([(None, 4), (None, 1)]) == (None, 4)
    with pytest.raises(SizeMismatchError, match=r"FunctionLayer: 'a \* b' cannot be computed"):
        two.output_shape([(3,), (4,)])
    with pytest.raises(SizeMismatchError, match="keep the batch axis"):
        L.FunctionLayer("sum(x, dim=0)").output_shape([(3,)])


@pytest.mark.parametrize(
    ("expression", "token"),
    [
        ("__import__('os').system('ls')", "the attribute access `.system`"),
        ("__import__('os')", "the function `__import__`"),
        ("x.grad", "the attribute access `.grad`"),
        ("torch.relu(x)", "the attribute access `.relu`"),
        ("open('net.json')", "the function `open`"),
        ("lambda: x", "`lambda: x`"),
        ("[x for x in y]", "`[x for x in y]`"),
        ("y + 1", "the name `y`"),
        ("x % 2", "the operator `%`"),
        ("sum(x, out=x)", "the keyword argument `out`"),
        ("x[x > 0]", "`x > 0`"),
        ("'text'", "`'text'`"),
        ("x if x else x", "`x if x else x`"),
    ],
)
def test_function_layer_refuses_anything_outside_the_language(expression, token):
    with pytest.raises(OptionError, match="FunctionLayer: `expression`") as caught:
        L.FunctionLayer(expression)
    assert token in str(caught.value) and "not allowed" in str(caught.value)


def test_function_layer_bad_inputs_and_syntax():
    with pytest.raises(OptionError, match="not a valid expression"):
        L.FunctionLayer("x +")
    with pytest.raises(OptionError, match="`inputs`"):
        L.FunctionLayer("exp", inputs=("exp",))
    with pytest.raises(OptionError, match="`inputs`"):
        L.FunctionLayer("a", inputs=("a", "a"))
    with pytest.raises(OptionError, match="at most 2000"):
        L.FunctionLayer("x" + " + x" * 600)


def test_a_saved_function_layer_is_text_and_a_tampered_file_is_refused(tmp_path):
    net = Network([L.SequenceInput(3), L.FunctionLayer("tanh(x) * 2", name="fn")])
    path = save(net, tmp_path / "net.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        record = json.loads(archive.read("network.json"))["layers"][1]
    assert record == {"name": "fn", "type": "FunctionLayer",
                      "config": {"expression": "tanh(x) * 2", "inputs": ["x"]}}  # fmt: skip
    assert not [n for n in names if n.endswith((".pkl", ".pt", ".pickle"))]
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(load(path)(x), torch.tanh(x) * 2)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for name in names:
            data = source.read(name)
            if name == "network.json":
                data = data.replace(b"tanh(x) * 2", b"__import__('os').getcwd()")
            target.writestr(name, data)
    with pytest.raises((OptionError, NetworkFileError), match="__import__"):
        load(tampered)


# -- all of them in one network ------------------------------------------------------------------


def _vision_transformer() -> Network:
    return Network(
        [
            L.ImageInput((3, 8, 8), normalization="none"),
            L.PatchEmbedding(4, 6, name="patches"),
            L.EmbeddingConcatenation(name="cls"),
            L.SinusoidalPositionEncoding(name="positions"),
            L.SelfAttention(2, name="attention"),
            L.FunctionLayer("x + relu(x)", name="function"),
            L.Indexing1d("first", name="token"),
            L.Dense(3, name="fc"),
        ]
    )


def test_network_sizes_analyze_save_load_and_to_python(tmp_path):
    torch.manual_seed(0)
    net = _vision_transformer().eval()
    analysis = analyze(net)
    assert analysis.row("patches").output_size == (4, 6)
    assert analysis.row("patches").learnables == 6 * 3 * 4 * 4 + 6
    assert analysis.row("cls").output_size == (5, 6) and analysis.row("cls").learnables == 6
    assert analysis.row("positions").learnables == 0
    assert analysis.row("function").type == "FunctionLayer"
    assert analysis.row("token").output_size == (6,)
    x = torch.randn(2, 3, 8, 8)
    again = load(save(net, tmp_path / "vit.zip")).eval()
    torch.testing.assert_close(again(x), net(x), rtol=0, atol=0)
    namespace: dict = {}
    exec(to_python(net), namespace)  # noqa: S102 - code the toolbox just wrote
    rebuilt = namespace["build_network"]().eval()
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=0)
    assert repr(rebuilt.layer("function")) == "FunctionLayer(expression='x + relu(x)')"
