"""Network builders: ready-made architectures built from toolbox layers (MATLAB's resnetNetwork)."""

from __future__ import annotations

from collections.abc import Sequence

from deeptoolbox.errors import OptionError
from deeptoolbox.layers import _activation, _combine, _conv, _dense, _input, _norm, _pool
from deeptoolbox.layers._base import check_choice, check_positive_int
from deeptoolbox.network._network import Network

__all__ = ["resnet_network"]

_BOTTLENECKS = ("downsample-first-conv", "none")
_BLOCK_TYPES = ("batchnorm-before-add", "batchnorm-after-add")
_POOLINGS = ("max", "average", "none")
_EXPANSION = 4  # a bottleneck block's last 1x1 convolution has 4 x its stack's filters


def _positive_ints(option: str, value: object) -> list[int]:
    items = [value] if isinstance(value, int) else value
    if (
        isinstance(items, str)
        or not isinstance(items, Sequence)
        or not items
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items)
    ):
        raise OptionError(
            f"resnet_network: `{option}` must be a list of positive ints, one per stack. "
            f"Received: {option}={value!r}. Example: {option}=[3, 4, 6, 3]."
        )
    return list(items)


def _conv_bn(prefix: str, filters: int, kernel: int, stride: int) -> list:
    return [
        _conv.Conv2d(
            filters, kernel, stride=stride, padding="same", weights_initializer="he",
            name=f"{prefix}_conv",
        ),
        _norm.BatchNorm(name=f"{prefix}_bn"),
    ]  # fmt: skip


class _Builder:
    """Adds the layers of one residual network to ``net``, block by block."""

    def __init__(self, net: Network, bottleneck: bool, before_add: bool) -> None:
        self.net, self.bottleneck, self.before_add = net, bottleneck, before_add
        self.channels = 0

    def stem(self, filters: int, kernel: int, stride: int, pooling: str) -> None:
        layers = [
            *_conv_bn("stem", filters, kernel, stride),
            _activation.ReLU(name="stem_relu"),
        ]
        if pooling == "max":
            layers.append(_pool.MaxPool2d(3, stride=2, padding="same", name="stem_pool"))
        elif pooling == "average":
            layers.append(_pool.AvgPool2d(3, stride=2, padding="same", name="stem_pool"))
        self.net.add_layers(layers).connect("input", layers[0].name)
        self.last, self.channels = layers[-1].name, filters

    def block(self, prefix: str, filters: int, stride: int) -> None:
        """One residual block: the main branch, the shortcut, the addition and a ReLU."""
        width = filters * _EXPANSION if self.bottleneck else filters
        if self.bottleneck:  # 1x1 (downsampling here), 3x3, then 1x1 expanding the channels
            shapes = [(filters, 1, stride), (filters, 3, 1), (width, 1, 1)]
        else:
            shapes = [(filters, 3, stride), (filters, 3, 1)]
        main: list = []
        for index, (count, kernel, step) in enumerate(shapes, start=1):
            main += _conv_bn(f"{prefix}_{index}", count, kernel, step)
            if index < len(shapes):
                main.append(_activation.ReLU(name=f"{prefix}_{index}_relu"))
        if not self.before_add:
            main.pop()  # the last batch normalization comes after the addition
        add = _combine.Addition(name=f"{prefix}_add")
        after = [_norm.BatchNorm(name=f"{prefix}_add_bn")] if not self.before_add else []
        self.net.add_layers([*main, add, *after, _activation.ReLU(name=f"{prefix}_relu")])
        self.net.connect(self.last, main[0].name)
        shortcut = self.last
        if stride != 1 or self.channels != width:  # projection shortcut: 1x1 conv + BN
            projection = _conv_bn(f"{prefix}_shortcut", width, 1, stride)
            self.net.add_layers(projection).connect(self.last, projection[0].name)
            shortcut = projection[-1].name
        self.net.connect(shortcut, f"{add.name}/in2")
        self.last, self.channels = f"{prefix}_relu", width


def resnet_network(
    input_size: Sequence[int],
    num_classes: int,
    *,
    stack_depth: Sequence[int] = (3, 4, 6, 3),
    num_filters: Sequence[int] = (64, 128, 256, 512),
    bottleneck_type: str = "downsample-first-conv",
    residual_block_type: str = "batchnorm-before-add",
    initial_filter_size: int = 7,
    initial_num_filters: int = 64,
    initial_stride: int = 2,
    initial_pooling_layer: str = "max",
    normalization: str = "none",
    classes: Sequence[str] | None = None,
    name: str = "resnet",
) -> Network:
    """A 2-D residual network for image classification (MATLAB's ``resnetNetwork`` and
    ``resnetLayers``), with freshly initialized weights.

    The defaults give MATLAB's default network, equivalent to ResNet-50: a 7x7 stride-2 stem
    convolution with batch normalization, ReLU and 3x3 stride-2 max pooling; four stacks of
    3, 4, 6 and 3 bottleneck blocks (1x1, 3x3 and 1x1 convolutions, the last with four times
    the stack's filters); global average pooling, a dense layer and a softmax. Each stack after
    the first halves the image size in its first block (in the first convolution, as MATLAB's
    ``"downsample-first-conv"``), and a block whose size or channel count changes gets a 1x1
    convolution with batch normalization on its shortcut. Convolutions use ``padding="same"``,
    a bias and He initialization. For a pretrained ResNet use ``hub.pretrained("resnet50")``.

    Args:
        input_size: image size (C, H, W), e.g. ``(3, 224, 224)`` (MATLAB's [H W C]).
        num_classes: outputs of the final dense layer (and the softmax).
        stack_depth: blocks per stack; ``[2, 2, 2, 2]`` with ``bottleneck_type="none"`` is
            ResNet-18, ``[3, 4, 23, 3]`` ResNet-101.
        num_filters: filters of each stack's convolutions (one per stack).
        bottleneck_type: ``"downsample-first-conv"`` (bottleneck blocks) or ``"none"``
            (basic blocks of two 3x3 convolutions).
        residual_block_type: ``"batchnorm-before-add"`` (the last batch normalization of the
            main branch comes before the addition) or ``"batchnorm-after-add"``.
        initial_filter_size, initial_num_filters, initial_stride: the stem convolution.
        initial_pooling_layer: ``"max"``, ``"average"`` or ``"none"`` after the stem.
        normalization: the input layer's normalization (``"none"`` by default; MATLAB's is
            ``"zerocenter"``, which needs statistics from the training data).
        classes: class names (``net.classes``); their count must equal ``num_classes``.
        name: the network's name.

    Raises:
        OptionError: an option is out of range, or ``stack_depth`` and ``num_filters`` differ
            in length.

    Example:
        >>> import torch
        >>> net = resnet_network((3, 32, 32), 10, stack_depth=[1, 1], num_filters=[8, 16],
        ...                      bottleneck_type="none")
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> len(resnet_network((3, 224, 224), 10).layers)  # as MATLAB's: 176 layers
        176
    """
    depths = _positive_ints("stack_depth", stack_depth)
    filters = _positive_ints("num_filters", num_filters)
    if len(depths) != len(filters):
        raise OptionError(
            f"resnet_network: `stack_depth` and `num_filters` need one entry per stack; "
            f"received {len(depths)} and {len(filters)} (stack_depth={list(stack_depth)}, "
            f"num_filters={list(num_filters)})."
        )
    check_positive_int("resnet_network", "num_classes", num_classes, "resnet_network(s, 10)")
    for option, value in (
        ("initial_filter_size", initial_filter_size),
        ("initial_num_filters", initial_num_filters),
        ("initial_stride", initial_stride),
    ):
        check_positive_int("resnet_network", option, value, f"{option}=3")
    kind = "resnet_network"
    bottleneck = check_choice(kind, "bottleneck_type", bottleneck_type, _BOTTLENECKS)
    block_type = check_choice(kind, "residual_block_type", residual_block_type, _BLOCK_TYPES)
    pooling = check_choice(kind, "initial_pooling_layer", initial_pooling_layer, _POOLINGS)
    net = Network(name=name)
    with net.editing():  # sizes resolved once, when every layer is in place
        net.add_layers(_input.ImageInput(input_size, normalization=normalization, name="input"))
        builder = _Builder(net, bottleneck != "none", block_type == "batchnorm-before-add")
        builder.stem(initial_num_filters, initial_filter_size, initial_stride, pooling)
        for stack, (depth, count) in enumerate(zip(depths, filters, strict=True), start=1):
            for block in range(1, depth + 1):
                stride = 2 if stack > 1 and block == 1 else 1
                builder.block(f"stack{stack}_block{block}", count, stride)
        head = [
            _pool.GlobalAvgPool(name="gap"),
            _dense.Dense(num_classes, name="fc"),
            _activation.Softmax(name="softmax"),
        ]
        net.add_layers(head).connect(builder.last, "gap")
    net.classes = classes
    net.initialize()
    return net
