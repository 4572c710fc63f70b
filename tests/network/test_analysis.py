import pytest

from deeptoolbox import Network, analyze, plot_network
from deeptoolbox import layers as L
from deeptoolbox.errors import NotInitializedError, OptionError


def residual(skip_filters=8):
    net = Network(
        [
            L.ImageInput((3, 16, 16), name="in"),
            L.Conv2d(8, 3, padding="same", name="conv1"),
            L.ReLU(name="relu1"),
            L.Conv2d(8, 3, padding="same", name="conv2"),
            L.Addition(name="add"),
            L.ReLU(name="relu2"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(4, name="fc"),
        ]
    )
    net.add_layers(L.Conv2d(skip_filters, 1, name="skip"))
    net.connect("in", "skip").connect("skip", "add/in2")
    return net


def test_clean_network_rows():
    result = analyze(residual())
    assert result.ok and result.issues == []
    row = result.row("add")
    assert row.type == "Addition"
    assert row.sources == {"in1": "conv2", "in2": "skip"}
    assert row.input_sizes == [(8, 16, 16), (8, 16, 16)]
    assert row.output_size == (8, 16, 16)
    assert result.row("conv1").learnables == 3 * 8 * 9 + 8
    assert result.total_learnables == sum(p.numel() for p in residual().parameters())


def test_mismatched_addition_names_both_layers_and_sizes():
    result = analyze(residual(skip_filters=4))
    assert not result.ok
    (error,) = result.errors
    assert error.layer == "add"
    for text in ("conv2", "skip", "(8, 16, 16)", "(4, 16, 16)"):
        assert text in error.message
    assert result.row("relu2").output_size is None  # downstream of the problem


def test_dangling_layer_is_reported():
    net = residual()
    net.add_layers(L.Dense(3, name="dangling"))
    (error,) = analyze(net).errors
    assert error.layer == "dangling" and "input port 'in' is not connected" in error.message


def test_cycle_is_reported_with_its_layers():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(3, name="a"), L.Addition(name="add")])
    net.add_layers([L.Dense(3, name="b"), L.ReLU(name="c")])
    net.connect("add", "b").connect("c", "add/in2")
    result = analyze(net)
    cycle_layers = {i.layer for i in result.errors if "cycle" in i.message}
    assert cycle_layers == {"add", "b", "c"}
    assert "add -> b -> c -> add" in result.errors[0].message
    with pytest.raises(NotInitializedError, match="cycle"):
        net.initialize()


def test_missing_input_and_unused_input_layer():
    net = Network([L.Dense(3, name="lonely")])
    messages = [str(i) for i in analyze(net).errors]
    assert any("no input layer" in m for m in messages)
    net = Network([L.FeatureInput(2, name="x"), L.Dense(1)])
    net.add_layers(L.FeatureInput(2, name="unused"))
    (warning,) = analyze(net).warnings
    assert warning.layer == "unused"
    assert analyze(net).ok


def test_table_prints_every_layer_and_problem(capsys):
    net = residual(skip_filters=4)
    text = str(analyze(net))
    assert text.splitlines()[0].startswith("Network 'network': 9 layers")
    for name in net.layer_names:
        assert name in text
    assert "ERROR: Addition" in text
    net.summary()
    assert "ERROR: Addition" in capsys.readouterr().out


def test_frozen_and_learn_rate_shown():
    net = residual().freeze("conv1").set_learn_rate_factor("fc", 10)
    result = analyze(net)
    assert result.row("conv1").frozen and not result.row("conv2").frozen
    assert "frozen" in str(result) and "lr x10" in str(result)


def test_size_error_on_single_input_layer():
    net = Network([L.SequenceInput(3), L.Conv2d(4, 3, padding="same", name="conv")])
    (error,) = analyze(net).errors
    assert error.layer == "conv" and "images (C, H, W)" in error.message


def test_analyze_rejects_non_networks():
    with pytest.raises(OptionError, match="Network"):
        analyze(L.Dense(3))


def test_plot_network_writes_png(tmp_path):
    path = tmp_path / "net.png"
    plot_network(residual(skip_filters=4), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_initialize_lists_each_problem_once():
    net = Network([L.Dense(3, name="lonely")])
    with pytest.raises(NotInitializedError) as info:
        net.initialize()
    assert str(info.value).count("no input layer") == 1


def test_row_of_unknown_layer():
    from deeptoolbox.errors import LayerNotFoundError

    with pytest.raises(LayerNotFoundError, match="'nope'"):
        analyze(residual()).row("nope")


def test_weights_too_large_to_allocate_are_an_analysis_error_naming_the_layer():
    import torch

    net = Network([L.FeatureInput(3), L.Dense(2**40, name="fc")])  # 13 TB of weights
    (issue,) = analyze(net).errors
    assert (
        issue.layer == "fc"
        and "Dense 'fc': its weights for input size [(3,)] cannot be" in issue.message
    )
    with pytest.raises(NotInitializedError, match="cannot be allocated"):
        net(torch.ones(1, 3))


def test_learnables_of_a_layer_of_unknown_size_are_unknown_not_zero():
    """A Dense or Conv2d whose input is unconnected has no weights yet: its learnables are
    None (the count depends on the size); layers that have none of any size keep 0, and a
    size-independent count (a PReLU with one alpha) is known. Once connected, each count
    equals the parameters the built layer holds."""
    net = Network([L.FeatureInput(4, name="x"), L.Dense(2, name="fc")])
    loose = [L.Dense(3, name="d"), L.Conv2d(4, 3, name="conv"), L.ReLU(name="relu"),
             L.Concatenation(name="cat"), L.PReLU(channel_wise=False, name="one_alpha")]  # fmt: skip
    for layer in loose:
        net.add_layers(layer)
    result = analyze(net)
    learnables = {row.name: row.learnables for row in result.rows}
    assert learnables == {"x": 0, "fc": 10, "d": None, "conv": None, "relu": 0, "cat": 0,
                          "one_alpha": 1}  # fmt: skip
    assert result.unsized == ["d", "conv"] and result.total_learnables == 11
    text = str(result)
    assert "11 learnables (+ 2 layers of unknown size)" in text.splitlines()[0]
    assert [line.split()[5] for line in text.splitlines() if line.startswith(("3 ", "4 "))] == [
        "unknown", "unknown"]  # fmt: skip
    net.connect("fc", "d")
    after = analyze(net)
    assert after.row("d").learnables == sum(p.numel() for p in net.layer("d").parameters()) == 9
    assert after.unsized == ["conv"]


def test_built_dense_after_an_upstream_size_error_is_of_unknown_size():
    """A Dense built for the old size is stale once a size error upstream makes its input
    unknown: its learnables are unknown (the designer shows "–"), not the stale count."""
    from deeptoolbox.apps import DesignerSession

    net = Network([
        L.ImageInput((1, 28, 28)), L.Conv2d(8, 3), L.ReLU(), L.Flatten(), L.Dense(10),
    ])  # fmt: skip
    session = DesignerSession(net)
    graph = session.edit({"op": "set", "name": "conv2d_1", "config": {"kernel_size": 40}})
    learnables = {layer["name"]: layer["learnables"] for layer in graph["layers"]}
    assert learnables["dense_1"] is None
    assert "dense_1" in graph["unsized"]
    # the conv whose kernel no longer fits still counts its weights from the known channels
    assert learnables["conv2d_1"] == 8 * 1 * 40 * 40 + 8
    assert graph["total_learnables"] == 8 * 1 * 40 * 40 + 8


def test_summary_counts_read_in_the_singular_for_one():
    lonely = str(analyze(Network([L.Dense(3, name="lonely")]))).splitlines()[0]
    assert lonely.startswith("Network 'network': 1 layer, 0 learnables (+ 1 layer of unknown")
    net = Network([L.FeatureInput(2, name="x"), L.Dense(1)])
    net.add_layers(L.FeatureInput(2, name="unused"))
    assert str(analyze(net)).splitlines()[0].endswith("3 learnables, 0 errors, 1 warning")
    net = Network([L.ImageInput((1, 4, 4)), L.Conv2d(8, 5)])
    first = str(analyze(net)).splitlines()[0]
    assert first.startswith("Network 'network': 2 layers, ") and first.endswith(
        ", 1 error, 0 warnings"
    )


def test_a_kernel_that_does_not_fit_still_counts_its_learnables_from_the_channels():
    net = Network([L.ImageInput((1, 4, 4)), L.Conv2d(8, 5, name="conv")])
    result = analyze(net)
    (error,) = result.errors
    assert error.layer == "conv" and "kernel (5, 5) does not fit" in error.message
    assert result.row("conv").learnables == 8 * 1 * 5 * 5 + 8
    assert result.unsized == [] and result.total_learnables == 208
    (conv_line,) = [line for line in str(result).splitlines() if line.startswith("2  conv ")]
    assert " 208 " in conv_line and "unknown" not in conv_line
    net = Network([L.ImageInput((3, 2, 2)), L.MaxPool2d(3), L.Flatten(), L.Dense(4, name="fc")])
    assert analyze(net).row("fc").learnables is None  # its count depends on the unknown size
