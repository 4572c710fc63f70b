"""Bad options fail at construction naming the option and value; bad sizes name the sizes."""

from __future__ import annotations

import pytest

import deeptoolbox.layers as L
from deeptoolbox.errors import OptionError, SizeMismatchError

# (constructor call, option named in the message, bad value as it appears in the message)
BAD_OPTIONS = [
    ("Dense(0)", "units", "0"),
    ("Dense(8.5)", "units", "8.5"),
    ("Dense(True)", "units", "True"),
    ("Dense(4, weights_initializer='uniform')", "weights_initializer", "'uniform'"),
    ("Dense(4, bias_initializer='glorot')", "bias_initializer", "'glorot'"),
    ("Conv2d(8, 0)", "kernel_size", "0"),
    ("Conv2d(0, 3)", "filters", "0"),
    ("Conv2d(8, (3, 3, 3))", "kernel_size", "(3, 3, 3)"),
    ("Conv2d(8, 3, stride=0)", "stride", "0"),
    ("Conv2d(8, 3, padding='full')", "padding", "'full'"),
    ("Conv2d(8, 3, padding=-1)", "padding", "-1"),
    ("Conv2d(8, 3, groups=3)", "groups", "3"),
    ("Conv1d(8, 3, dilation=(1, 2))", "dilation", "(1, 2)"),
    ("Conv3d(4, (3, 3))", "kernel_size", "(3, 3)"),
    ("TransposedConv2d(4, 2, stride=3, cropping='same')", "cropping", "stride=(3, 3)"),
    ("TransposedConv2d(4, 3, cropping='valid')", "cropping", "'valid'"),
    ("MaxPool2d(0)", "pool_size", "0"),
    ("AvgPool1d(2, stride=0)", "stride", "0"),
    ("MaxPool2d(2, padding=2)", "padding", "padding=2"),
    ("AvgPool2d(2, padding='full')", "padding", "'full'"),
    ("BatchNorm(epsilon=0)", "epsilon", "0"),
    ("BatchNorm(momentum=1.5)", "momentum", "1.5"),
    ("LayerNorm(epsilon=-1e-5)", "epsilon", "-1e-05"),
    ("GroupNorm(0)", "groups", "0"),
    ("GroupNorm('instance')", "groups", "'instance'"),
    ("GroupNorm(2.5)", "'channel-wise'", "2.5"),  # the message lists the named choices
    ("LeakyReLU('0.1')", "scale", "'0.1'"),
    ("ELU(alpha=0)", "alpha", "0"),
    ("GELU('fast')", "approximation", "'fast'"),
    ("Dropout(1.5)", "probability", "1.5"),
    ("Dropout(-0.1)", "probability", "-0.1"),
    ("Dropout(1)", "probability", "1"),
    ("LSTM(0)", "hidden_size", "0"),
    ("LSTM(8, output_mode='x')", "output_mode", "'x'"),
    ("GRU(8, num_layers=0)", "num_layers", "0"),
    ("GRU(8, dropout=1.0)", "dropout", "1.0"),
    ("Embedding(0, 4)", "vocabulary_size", "0"),
    ("Embedding(10, 0)", "dimension", "0"),
    ("Embedding(10, 4, padding_index=10)", "padding_index", "10"),
    ("SelfAttention(0)", "num_heads", "0"),
    ("SelfAttention(3, key_channels=8)", "key_channels", "8"),
    ("SelfAttention(2, output_channels=0)", "output_channels", "0"),
    ("SelfAttention(2, dropout=2)", "dropout", "2"),
    ("PositionEmbedding(0)", "max_position", "0"),
    ("PositionEmbedding(8, kind='rotary')", "kind", "'rotary'"),
    ("PositionEmbedding(8, combine='concat')", "combine", "'concat'"),
    ("Reshape((2, -1, -1))", "target_shape", "(2, -1, -1)"),
    ("Reshape((0, 4))", "target_shape", "(0, 4)"),
    ("Reshape(())", "target_shape", "()"),
    ("Resize2d()", "scale", "None"),
    ("Resize2d(scale=2, output_size=4)", "output_size", "4"),
    ("Resize2d(scale=-1)", "scale", "-1"),
    ("Resize2d(output_size=(4, 0))", "output_size", "(4, 0)"),
    ("Resize2d(scale=2, method='area')", "method", "'area'"),
    ("Addition(1)", "num_inputs", "1"),
    ("Multiplication(0)", "num_inputs", "0"),
    ("Concatenation(axis='x')", "axis", "'x'"),
    ("Concatenation(axis=1.5)", "axis", "1.5"),
    ("FeatureInput(0)", "num_features", "0"),
    ("FeatureInput(3, normalization='minmax')", "normalization", "'minmax'"),
    ("FeatureInput(3, normalization_dimension='row')", "normalization_dimension", "'row'"),
    ("ImageInput((3, 32))", "size", "(3, 32)"),
    ("VolumeInput((1, 0, 8, 8))", "size", "(1, 0, 8, 8)"),
    ("SequenceInput(0)", "num_channels", "0"),
    ("SequenceInput(3, length=0)", "length", "0"),
]


@pytest.mark.parametrize(
    ("call", "option", "value"), BAD_OPTIONS, ids=[c for c, _, _ in BAD_OPTIONS]
)
def test_bad_option_names_the_option_and_value(call, option, value):
    with pytest.raises(OptionError) as info:
        eval(call, {"__builtins__": {}}, vars(L))  # noqa: S307 - a literal from the table
    message = str(info.value)
    layer_type = call.split("(")[0]
    assert message.startswith(layer_type), message
    assert option in message, message
    assert value in message, message
    assert isinstance(info.value, ValueError)  # plain except ValueError clauses still catch it


def test_option_table_covers_most_layer_types():
    covered = {call.split("(")[0] for call, _, _ in BAD_OPTIONS}
    assert len(BAD_OPTIONS) >= 25
    assert len(covered) >= 25


# (layer, input sizes, phrases the message must contain)
BAD_SIZES = [
    (L.Conv2d(8, 3), [(None, 8)], ["Conv2d expects images (C, H, W)", "(T, 8)"]),
    (L.Conv1d(8, 3), [(3, 8, 8)], ["Conv1d expects sequences (T, C)", "(3, 8, 8)"]),
    (L.Conv3d(8, 3), [(3, 8, 8)], ["Conv3d expects volumes", "(3, 8, 8)"]),
    (L.Conv2d(8, 3, groups=2), [(3, 8, 8)], ["input channels (3)", "groups (2)"]),
    (L.Conv2d(8, 5, padding="valid"), [(1, 4, 4)], ["kernel (5, 5) does not fit", "(1, 4, 4)"]),
    (L.TransposedConv2d(2, 3, cropping=2), [(1, 1, 1)], ["leaves no output", "(1, 1, 1)"]),
    (L.MaxPool2d(4), [(1, 3, 3)], ["pool size (4, 4) is larger", "(1, 3, 3)"]),
    (L.MaxPool1d(2), [(3, 8, 8)], ["MaxPool1d expects sequences", "(3, 8, 8)"]),
    (L.GlobalAvgPool(), [(8,)], ["GlobalAvgPool expects sequences, images or volumes", "size (8)"]),
    (L.Flatten(), [(None, 8)], ["Flatten needs a fixed size", "(T, 8)"]),
    (L.Dense(4), [(3, None, 5)], ["Dense needs a fixed input size", "(3, T, 5)"]),
    (L.Reshape((3, 5)), [(4, 4)], ["cannot reshape an input of size (4, 4)", "16 values"]),
    (L.Reshape((3, -1)), [(16,)], ["size (16) (16 values)", "(3, -1)"]),
    (L.LSTM(4), [(3, 8, 8)], ["LSTM expects sequences (T, C)", "(3, 8, 8)"]),
    (L.GRU(4), [(None, None)], ["GRU needs a fixed number of channels"]),
    (L.SelfAttention(2), [(8,)], ["SelfAttention expects sequences (T, C)", "size (8)"]),
    (L.Embedding(5, 2), [(None, 3)], ["one token id per time step", "(T, 3)"]),
    (L.Resize2d(scale=2), [(None, 3)], ["Resize2d expects images", "(T, 3)"]),
    (L.BatchNorm(), [(None, None)], ["BatchNorm needs a fixed number of channels"]),
    (L.GroupNorm(3), [(8, 4, 4)], ["8 input channels cannot be split into 3 groups"]),
    (L.Addition(), [(3, 4), (3, 5)], ["same size", "in1 (3, 4), in2 (3, 5)"]),
    (L.Concatenation(), [(3, 4, 4), (3, 5, 4)], ["except on axis 0", "in2 (3, 5, 4)"]),
    (L.PositionEmbedding(4), [(5, 2)], ["length 5 exceed max_position=4"]),
]


@pytest.mark.parametrize(
    ("layer", "shapes", "phrases"), BAD_SIZES, ids=[repr(case[0]) for case in BAD_SIZES]
)
def test_bad_sizes_raise_size_mismatch(layer, shapes, phrases):
    with pytest.raises(SizeMismatchError) as info:
        layer.output_shape(shapes)
    for phrase in phrases:
        assert phrase in str(info.value)
    with pytest.raises(SizeMismatchError):  # build checks the same rule before making weights
        layer.build(shapes)
    assert not layer.is_built
