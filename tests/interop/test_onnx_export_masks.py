"""export_onnx of LSTM/GRU layers with a padding mask (has_padding_mask=True).

Each network has a sequence input ``x`` and a mask input ``mask`` (N, T, 1) feeding masked
recurrent layers of every kind: uni- and bidirectional, "sequence" and "last", and a masked
layer reading another's output; two stacked layers (num_layers=2) are checked at the opset
limits (slow). The files are checked in onnxruntime
against the toolbox network on right-padded, left-padded and inner-padded batches of two
different lengths and batch sizes (free axes), and the network's own masked forward is checked
against running each unpadded sequence alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.interop import export_onnx, import_onnx

TOLERANCE = 1e-5  # |onnx - torch| / (1 + |torch|), float32


def masked_network(cell) -> Network:
    """x and mask feed three masked layers; ``bi_seq`` feeds ``top`` (each kind once: the
    exporter's time grows with every recurrent layer and direction)."""
    torch.manual_seed(0)
    net = Network([L.SequenceInput(3, name="x")])
    net.add_layers(L.SequenceInput(1, name="mask"))
    heads = [
        cell(4, has_padding_mask=True, name="uni_seq"),
        cell(5, output_mode="last", bidirectional=True, has_padding_mask=True, name="bi_last"),
        cell(3, bidirectional=True, has_padding_mask=True, name="bi_seq"),
    ]
    for layer in heads:
        net.add_layers(layer).connect("x", f"{layer.name}/in").connect("mask", f"{layer.name}/mask")
    net.add_layers(cell(2, output_mode="last", has_padding_mask=True, name="top"))
    net.connect("bi_seq", "top/in").connect("mask", "top/mask")
    return net.eval()


_EXPORTED: dict[str, tuple[Network, Path]] = {}


@pytest.fixture(params=["LSTM", "GRU"])
def exported(request, tmp_path_factory) -> tuple[Network, Path]:
    """(network, file), exported once per cell type with verify=True."""
    if request.param not in _EXPORTED:
        net = masked_network(getattr(L, request.param))
        path = tmp_path_factory.mktemp("masked") / f"{request.param}.onnx"
        _export_in_a_fresh_process(request.param, path)
        _EXPORTED[request.param] = (net, path)
    return _EXPORTED[request.param]


def _export_in_a_fresh_process(cell: str, path: Path) -> None:
    """Export ``masked_network(cell)`` (same seed, same weights) in a new Python process.

    torch.export of a free-length masked GRU fails after another masked GRU was exported in
    the same process (a torch-internal order dependence, not root-caused; see the issue notes),
    and export_onnx then falls back to the TorchScript exporter, whose file holds an ``If``
    node. A fresh process gives the file a user exporting this network gets.
    """
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_onnx_export_masks as t; "
        "from deeptoolbox import layers as L; from deeptoolbox.interop import export_onnx; "
        "export_onnx(t.masked_network(getattr(L, sys.argv[2])), sys.argv[3])"
    )
    here = Path(__file__).resolve().parent
    source = str(here.parents[1] / "src")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(here), cell, str(path)],
        capture_output=True, text=True, env=environment, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def padded_batch(lengths: list[int], total: int, side: str, seed: int):
    """Random sequences of ``lengths`` padded to ``total`` steps on ``side``; padded steps hold
    random values too, so a leak of padding into the results shows."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), total, 3, generator=generator)
    mask = torch.zeros(len(lengths), total, 1)
    for i, length in enumerate(lengths):
        if side == "right":
            mask[i, :length] = 1
        elif side == "left":
            mask[i, total - length :] = 1
        else:  # inner: every other step up to the length
            mask[i, : 2 * length : 2] = 1
    return x, mask


def run_onnx(path: Path, x: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy(), "mask": mask.numpy()})


def largest_difference(got: np.ndarray, want: torch.Tensor) -> float:
    want_np = want.numpy()
    assert got.shape == want_np.shape
    return float(np.max(np.abs(got - want_np) / (1 + np.abs(want_np))))


def test_mask_is_a_graph_input_with_free_batch_and_length(exported):
    net, path = exported
    graph = onnx.load(str(path)).graph
    inputs = {v.name: v.type.tensor_type.shape.dim for v in graph.input}
    assert list(inputs) == ["x", "mask"]
    for dims in inputs.values():
        assert dims[0].dim_param and dims[1].dim_param  # free batch and sequence length
    assert inputs["x"][1].dim_param == inputs["mask"][1].dim_param  # one shared length
    assert [o.name for o in graph.output] == net.output_names


@pytest.mark.parametrize("side", ["right", "left", "inner"])
def test_onnxruntime_matches_the_network_on_two_lengths(exported, side):
    net, path = exported
    for seed, (lengths, total) in enumerate((([5, 2, 6], 6), ([3, 11, 1, 7, 11], 11))):
        if side == "inner":
            total *= 2
        x, mask = padded_batch(lengths, total, side, seed)
        with torch.no_grad():
            expected = net(x, mask)
        for name, got, want in zip(net.output_names, run_onnx(path, x, mask), expected,
                                   strict=True):  # fmt: skip
            assert largest_difference(got, want) < TOLERANCE, (name, side, total)


def test_all_padding_rows_match_the_network(exported):
    """A row with no real step: the layer runs its first step (as pack_padded_sequence does
    with the length clamped to one); the file does the same."""
    net, path = exported
    x, mask = padded_batch([4, 0, 2], 5, "right", seed=3)
    with torch.no_grad():
        expected = net(x, mask)
    for got, want in zip(run_onnx(path, x, mask), expected, strict=True):
        assert largest_difference(got, want) < TOLERANCE


def test_padded_steps_do_not_leak_and_match_unpadded_runs(exported):
    """The file's outputs equal running each sequence alone with no padding at all."""
    net, path = exported
    x, mask = padded_batch([6, 3], 6, "left", seed=4)
    outputs = dict(zip(net.output_names, run_onnx(path, x, mask), strict=True))
    for i, length in enumerate([6, 3]):
        alone = x[i : i + 1, 6 - length :]
        with torch.no_grad():
            reference = dict(zip(net.output_names, net(alone, torch.ones(1, length, 1)),
                                 strict=True))  # fmt: skip
        got_sequence = outputs["uni_seq"][i, 6 - length :]
        assert largest_difference(got_sequence, reference["uni_seq"][0]) < TOLERANCE
        assert np.all(outputs["uni_seq"][i, : 6 - length] == 0)  # padded steps give zeros
        for name in ("bi_last", "top"):
            assert largest_difference(outputs[name][i], reference[name][0]) < TOLERANCE


def test_import_onnx_reads_the_file_back(exported):
    """Network -> ONNX -> import_onnx -> Network gives the same outputs on any padding."""
    net, path = exported
    again = import_onnx(path).eval()
    assert again.input_names == ["x", "mask"]
    for seed, side in enumerate(("right", "left", "inner")):
        x, mask = padded_batch([4, 7, 2], 14 if side == "inner" else 7, side, seed)
        with torch.no_grad():
            pairs = zip(again(x, mask), net(x, mask), strict=True)
            for got, want in pairs:
                assert largest_difference(got.numpy(), want) < TOLERANCE, side


def test_nodes_are_named_after_the_masked_layers(exported):
    net, path = exported
    cell = "LSTM" if isinstance(net.layers["uni_seq"], L.LSTM) else "GRU"
    graph = onnx.load(str(path)).graph
    owners = {node.name.split("/")[0] for node in graph.node if node.op_type == cell}
    assert owners == {"uni_seq", "bi_last", "bi_seq", "top"}


def test_export_leaves_the_layers_unchanged(exported, tmp_path):
    """The exportable twin is attached only while exporting."""
    net, _ = exported
    export_onnx(net, tmp_path / "again.onnx", verify=False)  # in this process
    for name in ("uni_seq", "bi_last", "top"):
        layer = net.layers[name]
        assert "forward" not in vars(layer)
        assert not hasattr(layer, "onnx_export")
    assert all(key.startswith("layers.") and ".onnx_export" not in key for key in net.state_dict())
    x, mask = padded_batch([3, 2], 4, "right", seed=5)
    assert net(x, mask)[0].shape == (2, 4, 4)


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "opset"), [(L.GRU, 14), (L.LSTM, 23)])
def test_two_stacked_layers_export_at_the_opset_limits(cell, opset, tmp_path):
    net = Network([L.SequenceInput(2, name="x"),
                   cell(3, bidirectional=True, num_layers=2, has_padding_mask=True,
                        name="gru")])  # fmt: skip
    net.add_layers(L.SequenceInput(1, name="mask")).connect("mask", "gru/mask")
    path = export_onnx(net.eval(), tmp_path / "gru.onnx", opset=opset)
    x, mask = padded_batch([4, 1], 7, "left", seed=6)
    x = x[..., :2].contiguous()
    with torch.no_grad():
        want = net(x, mask)
    assert largest_difference(run_onnx(path, x, mask)[0], want) < TOLERANCE
