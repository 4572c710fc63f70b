"""Structured pruning: exact surgery, coupled layers, files, ONNX, Taylor scores, errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from nets import residual_concat_net, sequence_net, small_cnn

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.compress import CompressionError, TaylorPruner, prune
from deeptoolbox.errors import LayerNotFoundError, OptionError

onnxruntime = pytest.importorskip("onnxruntime")


def _shrink(net, layer, channels, factor=1e-3):
    """Make the given filters of ``layer`` tiny so magnitude pruning picks them."""
    with torch.no_grad():
        net.layer(layer).weight[channels] *= factor


def _zero_filters(net, layer, channels):
    module = net.layer(layer)
    with torch.no_grad():
        module.weight[channels] = 0
        if getattr(module, "bias", None) is not None:
            module.bias[channels] = 0


def _zero_norm(net, layer, channels):
    with torch.no_grad():
        net.layer(layer).weight[channels] = 0
        net.layer(layer).bias[channels] = 0


def test_pruning_equals_zeroing_across_addition_and_concatenation():
    net = residual_concat_net()
    # residual pair c1/c2 (+ BatchNorms), branch c3 and branch c5 of the Concatenation
    _shrink(net, "c1", [1, 4, 6, 7]), _shrink(net, "c2", [1, 4, 6, 7])
    _shrink(net, "c3", [0, 2, 5])
    _shrink(net, "c5", [1, 3])
    _shrink(net, "c4", [0, 2])  # feeds the grouped conv: position 0 of both groups
    pruned = prune(net, ratio=0.5, exclude=["grouped"]).network
    assert pruned.layer("c1").filters == 4 and pruned.layer("c2").filters == 4
    assert pruned.layer("c3").filters == 3 and pruned.layer("c5").filters == 3
    assert pruned.layer("dw").groups == 6 and pruned.layer("dw").filters == 6
    assert pruned.layer("c4").filters == 2 and pruned.layer("grouped").filters == 4

    reference = copy.deepcopy(net)
    for layer, norm in (("c1", "bn1"), ("c2", "bn2")):
        _zero_filters(reference, layer, [1, 4, 6, 7])
        _zero_norm(reference, norm, [1, 4, 6, 7])
    _zero_filters(reference, "c3", [0, 2, 5])
    _zero_filters(reference, "c5", [1, 3])
    _zero_filters(reference, "dw", [0, 2, 5, 6 + 1, 6 + 3])  # depthwise follows the concat
    _zero_filters(reference, "c4", [0, 2])
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), reference(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(net(x), reference(x), atol=1e-3)  # zeroing did change it


def test_pruned_network_saves_reloads_from_config_and_exports_to_onnx(tmp_path):
    pruned = prune(residual_concat_net(), ratio=0.5).network
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected = pruned(x)
    config = json.loads(pruned.to_json())
    assert {"name": "c1", "type": "Conv2d"}.items() <= config["layers"][1].items()
    assert config["layers"][1]["config"]["filters"] == 4
    rebuilt = dtb.Network.from_json(json.dumps(config))  # sizes from the config alone
    rebuilt.load_state_dict(pruned.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), expected, rtol=0, atol=0)
    dtb.save(pruned, tmp_path / "pruned.zip")
    with torch.no_grad():
        torch.testing.assert_close(dtb.load(tmp_path / "pruned.zip").eval()(x), expected)
    path = dtb.export_onnx(pruned, tmp_path / "pruned.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_recurrent_units_and_attention_heads_are_removed_exactly():
    net = sequence_net()
    with torch.no_grad():  # make LSTM units 0, 5 and heads 1, 3 the least important
        for p in net.layer("lstm").rnn.parameters():
            rows = p.view(4, 8, -1) if p.dim() == 2 else p.view(4, 8)
            rows[:, [0, 5, 2, 7]] *= 1e-3
        attention = net.layer("attention")
        for h in (1, 3):  # a head: 2 rows of query/key/value, 2 columns of the output
            for part in ("query", "key", "value"):
                getattr(attention, f"{part}_weight")[h * 2 : h * 2 + 2] *= 1e-3
            attention.output_weight[:, h * 2 : h * 2 + 2] *= 1e-3
        attention.output_weight[[0, 3, 4, 6]] *= 1e-2  # output channels
    pruned = prune(net, ratio=0.5, layers=["lstm", "attention"]).network
    assert pruned.layer("lstm").hidden_size == 4
    assert pruned.layer("attention").num_heads == 2
    assert pruned.layer("attention").output_channels == 4
    assert pruned.layer("gru").hidden_size == 6  # not listed: untouched

    reference = copy.deepcopy(net)
    with torch.no_grad():
        for p in reference.layer("lstm").rnn.parameters():
            rows = p.view(4, 8, -1) if p.dim() == 2 else p.view(4, 8)
            rows[:, [0, 2, 5, 7]] = 0  # every gate of those units
        attention = reference.layer("attention")
        for h in (1, 3):
            attention.output_weight[:, h * 2 : h * 2 + 2] = 0
        attention.output_weight[[0, 3, 4, 6]] = 0
        attention.output_bias[[0, 3, 4, 6]] = 0
    x = torch.randn(2, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), reference(x), rtol=1e-5, atol=1e-5)


def test_bidirectional_gru_units_go_in_pairs():
    pruned = prune(sequence_net(), ratio=0.5, layers=["gru"]).network
    assert pruned.layer("gru").hidden_size == 3
    assert pruned.output_shape("gru") == (None, 6)
    assert pruned(torch.randn(2, 5, 4)).shape == (2, 3)


def test_output_and_excluded_layers_keep_their_size():
    net = small_cnn()
    pruned = prune(net, ratio=0.5, exclude=["conv1"]).network
    assert pruned.layer("conv1").filters == 16
    assert pruned.layer("conv2").filters == 16
    assert pruned.layer("fc1").units == 32
    assert pruned.layer("fc2").units == 10  # the output: one unit per class
    assert pruned.classes == net.classes
    assert net.layer("conv2").filters == 32  # the original is untouched


def test_learnables_reduction_goal_is_reached():
    net = small_cnn()
    result = prune(net, learnables_reduction=0.6)
    assert result.learnables_reduction >= 0.6
    assert result.learnables_reduction < 0.75  # the smallest ratio that reaches it
    assert result.learnables == sum(p.numel() for p in result.network.parameters())
    assert "conv2" in str(result)


def test_prune_in_steps_with_fine_tuning_and_taylor_scores():
    torch.manual_seed(0)
    x = torch.randn(128, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long() + 2 * (x[:, 0, :4].mean((1, 2)) > 0).long()
    net = small_cnn(classes=4)
    options = dtb.TrainingOptions(max_epochs=1, mini_batch_size=32, verbose=False, seed=0)
    result = prune(net, (x, y), "crossentropy", ratio=0.5, steps=2, importance="taylor",
                   fine_tune=options)  # fmt: skip
    assert len(result.training) == 2
    assert result.network.layer("conv2").filters == 16
    assert result.network(x[:2]).shape == (2, 4)


def test_taylor_scores_rank_a_useless_channel_lowest():
    torch.manual_seed(0)
    net = dtb.Network([L.FeatureInput(3), L.Dense(4, name="hidden"), L.ReLU(), L.Dense(2)])
    with torch.no_grad():
        net.layer("hidden").weight[2] = 0  # unit 2 is dead: activation x gradient is zero
        net.layer("hidden").bias[2] = 0
    pruner = TaylorPruner(net)
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    pruner.update_score()
    scores = pruner.component_scores()
    assert min(scores, key=scores.get) == next(
        c.index for c in pruner.graph.prunable() if c.producers["hidden"] == [2]
    )
    pruner.update_prunables(max_to_prune=1)
    with torch.no_grad():  # masked: the unit's output is zero everywhere it flows
        masked = net(x)
    compressed = pruner.compress()
    assert compressed.layer("hidden").units == 3
    with torch.no_grad():
        torch.testing.assert_close(compressed(x), masked)
    assert not net.layer("hidden")._forward_hooks  # detached


def test_taylor_loop_never_empties_a_layer():
    net = dtb.Network([L.FeatureInput(3), L.Dense(2, name="hidden"), L.ReLU(), L.Dense(2)])
    pruner = TaylorPruner(net)
    net(torch.randn(4, 3)).sum().backward()
    pruner.update_score()
    pruner.update_prunables(max_to_prune=8)
    assert pruner.num_pruned == 1 and pruner.compress().layer("hidden").units == 1


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.2, True])
def test_ratio_outside_zero_one_is_refused(ratio):
    with pytest.raises(OptionError, match=r"`ratio` must be a number strictly between 0 and 1"):
        prune(small_cnn(), ratio=ratio)


def test_unknown_layer_name_is_named():
    with pytest.raises(LayerNotFoundError, match="'conv9'.*Did you mean"):
        prune(small_cnn(), ratio=0.5, layers=["conv9"])
    with pytest.raises(LayerNotFoundError, match="'bn7'"):
        prune(small_cnn(), ratio=0.5, exclude=["bn7"])


def test_unprunable_layer_is_named_with_the_reason():
    net = dtb.Network([L.SequenceInput(4), L.Dense(8, name="fc"), L.LayerNorm(name="norm"),
                       L.Dense(2, name="out")])  # fmt: skip
    with pytest.raises(CompressionError, match=r"'fc' cannot be pruned: .*LayerNorm 'norm'"):
        prune(net, ratio=0.5, layers=["fc"])
    with pytest.raises(CompressionError, match=r"'out' cannot be pruned: .*output"):
        prune(net, ratio=0.5, layers=["out"])


def test_taylor_without_data_is_refused():
    with pytest.raises(OptionError, match="`data`"):
        prune(small_cnn(), ratio=0.5, importance="taylor")


def test_pruning_does_not_warn_that_layers_were_reinitialized(recwarn):
    # The sliced weights of the layers whose sizes change are loaded right after the surgery,
    # so Network's "were re-initialized" warning would be false (the CLI printed it).
    net = small_cnn().eval()
    pruned = prune(net, ratio=0.5).network
    assert not [w for w in recwarn if "re-initialized" in str(w.message)]
    kept = [next(i for i in range(16) if torch.equal(net.layer("conv1").weight[i], w))
            for w in pruned.layer("conv1").weight]  # fmt: skip
    assert torch.equal(pruned.layer("bn1").weight, net.layer("bn1").weight[kept])
