"""U-Net for semantic segmentation as a toolbox Network (MATLAB's ``unet`` / ``unetLayers``)."""

from __future__ import annotations

from collections.abc import Sequence

from deeptoolbox.errors import OptionError
from deeptoolbox.layers import _activation, _combine, _conv, _input, _norm, _pool
from deeptoolbox.layers._base import check_positive_int
from deeptoolbox.network._network import Network

__all__ = ["unet"]


def _conv_block(prefix: str, filters: int, batch_norm: bool) -> list:
    """Two 3x3 'same' convolutions, each followed by (batch normalization and) a ReLU."""
    layers: list = []
    for index in (1, 2):
        layers.append(
            _conv.Conv2d(
                filters, 3, padding="same", weights_initializer="he", name=f"{prefix}_conv{index}"
            )  # fmt: skip
        )
        if batch_norm:
            layers.append(_norm.BatchNorm(name=f"{prefix}_bn{index}"))
        layers.append(_activation.ReLU(name=f"{prefix}_relu{index}"))
    return layers


def _check_size(input_size: object, depth: int) -> tuple[int, int, int]:
    size = tuple(input_size) if isinstance(input_size, Sequence) else None
    ok = size is not None and len(size) == 3 and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in size
    )  # fmt: skip
    if not ok:
        raise OptionError(
            f"unet: `input_size` must be (C, H, W) positive ints. Received: {input_size!r}. "
            "Example: unet((3, 64, 64), 4)."
        )
    if size[2] in (1, 3, 4) and size[0] > 4:  # type: ignore[index]
        raise OptionError(
            f"unet: `input_size` is (C, H, W), channels first. Received: {input_size!r}, which "
            f"looks channels-last; did you mean {(size[2], size[0], size[1])}?"  # type: ignore[index]
        )
    factor = 2**depth
    if size[1] % factor or size[2] % factor:  # type: ignore[index]
        raise OptionError(
            f"unet: the image height and width must be multiples of 2**depth = {factor} (each "
            f"encoder stage halves them). Received: input_size={input_size!r}, depth={depth}. "
            f"Resize the images, or lower `depth`."
        )
    return size  # type: ignore[return-value]


def unet(
    input_size: Sequence[int],
    num_classes: int,
    *,
    depth: int = 4,
    filters: int = 32,
    batch_norm: bool = True,
    classes: Sequence[str] | None = None,
    name: str = "unet",
) -> Network:
    """A U-Net for semantic segmentation (MATLAB's ``unet``), freshly initialized.

    ``depth`` encoder stages (MATLAB's ``EncoderDepth``), each two 3x3 convolutions with
    ``padding="same"`` (batch normalization and ReLU after each) then 2x2 max pooling; the
    first stage has ``filters`` filters (MATLAB's ``NumFirstEncoderFilters``) and each next
    one twice as many. A bridge of two convolutions, then ``depth`` decoder stages: a 2x2
    stride-2 transposed convolution, concatenation with the encoder stage of the same size
    (the skip connection) and two convolutions. A 1x1 convolution gives one score per class
    and pixel, and a softmax over the channels ends the network: outputs are (N, K, H, W)
    class probabilities (``train`` with "crossentropy" or the losses of
    :func:`segmentation_loss` uses the scores before the softmax).

    The result is an ordinary Network: edit it (``replace_layer``...), ``save`` / ``load``
    it, draw it with ``plot_network``.

    Args:
        input_size: (C, H, W); H and W must be multiples of ``2**depth``.
        num_classes: classes to segment, background included.
        depth: encoder (and decoder) stages, >= 1.
        filters: filters of the first encoder stage (doubling at each stage).
        batch_norm: batch normalization after each convolution (default True).
        classes: class names (``net.classes``), one per class.
        name: the network's name.

    Example:
        >>> import torch
        >>> net = unet((3, 32, 32), 4, depth=2, filters=8)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """
    check_positive_int("unet", "num_classes", num_classes, "unet((3, 64, 64), 4)")
    if num_classes < 2:
        raise OptionError(
            "unet: `num_classes` must be 2 or more: the network ends in a Softmax over classes, "
            "which is always 1 for one class. For foreground/background, use num_classes=2. "
            f"Received: num_classes={num_classes}."
        )
    check_positive_int("unet", "depth", depth, "depth=3")
    check_positive_int("unet", "filters", filters, "filters=16")
    size = _check_size(input_size, depth)
    if classes is not None and len(classes) != num_classes:
        raise OptionError(
            f"unet: `classes` must name {num_classes} classes (num_classes). Received "
            f"{len(classes)}: {list(classes)!r}."
        )
    net = Network(name=name)
    with net.editing():  # sizes resolved once, when every layer is in place
        net.add_layers(_input.ImageInput(size, name="input"))
        last, skips = "input", []
        for stage in range(1, depth + 1):
            block = _conv_block(f"encoder{stage}", filters * 2 ** (stage - 1), batch_norm)
            pool = _pool.MaxPool2d(2, stride=2, name=f"encoder{stage}_pool")
            net.add_layers([*block, pool]).connect(last, block[0].name)
            skips.append(block[-1].name)
            last = pool.name
        bridge = _conv_block("bridge", filters * 2**depth, batch_norm)
        net.add_layers(bridge).connect(last, bridge[0].name)
        last = bridge[-1].name
        for stage in range(depth, 0, -1):
            width = filters * 2 ** (stage - 1)
            up = _conv.TransposedConv2d(width, 2, stride=2, weights_initializer="he",
                                        name=f"decoder{stage}_upconv")  # fmt: skip
            join = _combine.Concatenation(name=f"decoder{stage}_concat")
            block = _conv_block(f"decoder{stage}", width, batch_norm)
            net.add_layers([up, _activation.ReLU(name=f"decoder{stage}_uprelu"), join, *block])
            net.connect(last, up.name).connect(skips[stage - 1], f"{join.name}/in2")
            last = block[-1].name
        head = [
            _conv.Conv2d(num_classes, 1, name="final_conv"),
            _activation.Softmax(name="softmax"),
        ]
        net.add_layers(head).connect(last, "final_conv")
    net.classes = None if classes is None else [str(c) for c in classes]
    net.initialize()
    return net
