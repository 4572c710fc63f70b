"""Layers: each an ``nn.Module`` that infers the sizes it can and saves its configuration.

Example:
    >>> from deeptoolbox import layers as L
    >>> L.Conv2d(16, 3, stride=2, padding="same")
    Conv2d(filters=16, kernel_size=3, stride=2, padding='same')
"""

from deeptoolbox.layers._activation import (
    ELU as ELU,
)
from deeptoolbox.layers._activation import (
    GELU as GELU,
)
from deeptoolbox.layers._activation import (
    ClippedReLU as ClippedReLU,
)
from deeptoolbox.layers._activation import (
    Dropout as Dropout,
)
from deeptoolbox.layers._activation import (
    HardSigmoid as HardSigmoid,
)
from deeptoolbox.layers._activation import (
    HardSwish as HardSwish,
)
from deeptoolbox.layers._activation import (
    LeakyReLU as LeakyReLU,
)
from deeptoolbox.layers._activation import (
    Mish as Mish,
)
from deeptoolbox.layers._activation import (
    PReLU as PReLU,
)
from deeptoolbox.layers._activation import (
    ReLU as ReLU,
)
from deeptoolbox.layers._activation import (
    Sigmoid as Sigmoid,
)
from deeptoolbox.layers._activation import (
    Softmax as Softmax,
)
from deeptoolbox.layers._activation import (
    Softplus as Softplus,
)
from deeptoolbox.layers._activation import (
    SpatialDropout as SpatialDropout,
)
from deeptoolbox.layers._activation import (
    StochasticDepth as StochasticDepth,
)
from deeptoolbox.layers._activation import (
    Swish as Swish,
)
from deeptoolbox.layers._activation import (
    Tanh as Tanh,
)
from deeptoolbox.layers._attention import (
    CrossAttention as CrossAttention,
)
from deeptoolbox.layers._attention import (
    Embedding as Embedding,
)
from deeptoolbox.layers._attention import (
    PositionEmbedding as PositionEmbedding,
)
from deeptoolbox.layers._attention import (
    SelfAttention as SelfAttention,
)
from deeptoolbox.layers._base import (
    Layer as Layer,
)
from deeptoolbox.layers._base import (
    Shape as Shape,
)
from deeptoolbox.layers._base import (
    StatefulLayer as StatefulLayer,
)
from deeptoolbox.layers._base import (
    register_layer as register_layer,
)
from deeptoolbox.layers._base import (
    registered_layer as registered_layer,
)
from deeptoolbox.layers._base import (
    registered_layers as registered_layers,
)
from deeptoolbox.layers._combine import (
    Addition as Addition,
)
from deeptoolbox.layers._combine import (
    Concatenation as Concatenation,
)
from deeptoolbox.layers._combine import (
    ModeSwitch as ModeSwitch,
)
from deeptoolbox.layers._combine import (
    Multiplication as Multiplication,
)
from deeptoolbox.layers._conv import (
    Conv1d as Conv1d,
)
from deeptoolbox.layers._conv import (
    Conv2d as Conv2d,
)
from deeptoolbox.layers._conv import (
    Conv3d as Conv3d,
)
from deeptoolbox.layers._conv import (
    TransposedConv1d as TransposedConv1d,
)
from deeptoolbox.layers._conv import (
    TransposedConv2d as TransposedConv2d,
)
from deeptoolbox.layers._conv import (
    TransposedConv3d as TransposedConv3d,
)
from deeptoolbox.layers._crop import Crop1d as Crop1d
from deeptoolbox.layers._crop import Crop2d as Crop2d
from deeptoolbox.layers._crop import Crop3d as Crop3d
from deeptoolbox.layers._dense import Dense as Dense
from deeptoolbox.layers._function import (
    FunctionLayer as FunctionLayer,
)
from deeptoolbox.layers._imported import MergeDirections as MergeDirections
from deeptoolbox.layers._imported import ScaleOffset as ScaleOffset
from deeptoolbox.layers._input import (
    FeatureInput as FeatureInput,
)
from deeptoolbox.layers._input import (
    ImageInput as ImageInput,
)
from deeptoolbox.layers._input import (
    InputLayer as InputLayer,
)
from deeptoolbox.layers._input import (
    SequenceInput as SequenceInput,
)
from deeptoolbox.layers._input import (
    TensorInput as TensorInput,
)
from deeptoolbox.layers._input import (
    VolumeInput as VolumeInput,
)
from deeptoolbox.layers._masking import (
    MaskedSteps as MaskedSteps,
)
from deeptoolbox.layers._masking import (
    PaddingMask as PaddingMask,
)
from deeptoolbox.layers._norm import (
    AxisLayerNorm as AxisLayerNorm,
)
from deeptoolbox.layers._norm import (
    BatchNorm as BatchNorm,
)
from deeptoolbox.layers._norm import (
    CrossChannelNorm as CrossChannelNorm,
)
from deeptoolbox.layers._norm import (
    GroupNorm as GroupNorm,
)
from deeptoolbox.layers._norm import (
    InstanceNorm as InstanceNorm,
)
from deeptoolbox.layers._norm import (
    LayerNorm as LayerNorm,
)
from deeptoolbox.layers._pool import (
    AdaptiveAvgPool1d as AdaptiveAvgPool1d,
)
from deeptoolbox.layers._pool import (
    AdaptiveAvgPool2d as AdaptiveAvgPool2d,
)
from deeptoolbox.layers._pool import (
    AdaptiveAvgPool3d as AdaptiveAvgPool3d,
)
from deeptoolbox.layers._pool import (
    AvgPool1d as AvgPool1d,
)
from deeptoolbox.layers._pool import (
    AvgPool2d as AvgPool2d,
)
from deeptoolbox.layers._pool import (
    AvgPool3d as AvgPool3d,
)
from deeptoolbox.layers._pool import (
    AvgPoolExcludingPadding as AvgPoolExcludingPadding,
)
from deeptoolbox.layers._pool import (
    GlobalAvgPool as GlobalAvgPool,
)
from deeptoolbox.layers._pool import (
    GlobalMaxPool as GlobalMaxPool,
)
from deeptoolbox.layers._pool import (
    MaxPool1d as MaxPool1d,
)
from deeptoolbox.layers._pool import (
    MaxPool2d as MaxPool2d,
)
from deeptoolbox.layers._pool import (
    MaxPool3d as MaxPool3d,
)
from deeptoolbox.layers._pool import (
    MaxUnpooling2d as MaxUnpooling2d,
)
from deeptoolbox.layers._recurrent import GRU as GRU
from deeptoolbox.layers._recurrent import LSTM as LSTM
from deeptoolbox.layers._recurrent import SimpleRNN as SimpleRNN
from deeptoolbox.layers._reshape import (
    DepthToSpace as DepthToSpace,
)
from deeptoolbox.layers._reshape import (
    Flatten as Flatten,
)
from deeptoolbox.layers._reshape import (
    Reshape as Reshape,
)
from deeptoolbox.layers._reshape import (
    Resize2d as Resize2d,
)
from deeptoolbox.layers._reshape import (
    Resize3d as Resize3d,
)
from deeptoolbox.layers._reshape import (
    SpaceToDepth as SpaceToDepth,
)
from deeptoolbox.layers._transformer import (
    Attention as Attention,
)
from deeptoolbox.layers._transformer import (
    EmbeddingConcatenation as EmbeddingConcatenation,
)
from deeptoolbox.layers._transformer import (
    Indexing1d as Indexing1d,
)
from deeptoolbox.layers._transformer import (
    PatchEmbedding as PatchEmbedding,
)
from deeptoolbox.layers._transformer import (
    SinusoidalPositionEncoding as SinusoidalPositionEncoding,
)

__all__ = [
    "Layer", "StatefulLayer", "Shape", "register_layer", "registered_layer",
    "registered_layers",
    "InputLayer", "FeatureInput", "ImageInput", "VolumeInput", "SequenceInput",
    "Dense", "Conv1d", "Conv2d", "Conv3d", "TransposedConv2d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "GlobalAvgPool", "GlobalMaxPool",
    "MaxPool3d", "AvgPool3d",
    "TransposedConv1d", "TransposedConv3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d", "MaxUnpooling2d", "Resize3d",
    "BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "CrossChannelNorm",
    "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh", "Softmax", "Swish", "Dropout",
    "ClippedReLU", "PReLU", "Softplus", "HardSwish", "HardSigmoid", "Mish", "SpatialDropout",
    "LSTM", "GRU", "Embedding", "SelfAttention", "PositionEmbedding",
    "Flatten", "Reshape", "Resize2d", "DepthToSpace", "SpaceToDepth",
    "Addition", "Concatenation", "Multiplication",
    "Attention", "PatchEmbedding", "SinusoidalPositionEncoding", "EmbeddingConcatenation",
    "Indexing1d", "FunctionLayer",
    "TensorInput", "PaddingMask", "MaskedSteps", "CrossAttention", "AvgPoolExcludingPadding",
    "AxisLayerNorm", "StochasticDepth", "ModeSwitch",
    "Crop1d", "Crop2d", "Crop3d", "SimpleRNN", "ScaleOffset", "MergeDirections",
]  # fmt: skip
