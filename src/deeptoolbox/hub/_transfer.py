"""Transfer learning: adapt a network's head to new classes, freeze early layers, learn-rate
factors. Works on Networks and on plain ``nn.Module`` classifiers (torchvision, timm...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

from deeptoolbox.errors import LayerNotFoundError, OptionError
from deeptoolbox.network._network import Network
from deeptoolbox.training._optim import LEARN_RATE_FACTORS

__all__ = ["adapt", "find_head", "freeze", "set_learn_rate_factor"]


def _learnable(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _network_head(net: Network) -> str:
    outputs = net.output_names
    if len(outputs) != 1:
        raise OptionError(
            f"find_head: network '{net.name}' has {len(outputs)} outputs {outputs}; name the "
            "layer to replace with layer='...'."
        )
    frontier, seen = [outputs[0]], set()
    while frontier:  # breadth-first, against the connections, from the output
        name = frontier.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if _learnable(net.layer(name)):
            return name
        frontier.extend(s for s in net.sources(name).values() if s is not None)
    raise OptionError(
        f"find_head: no layer with weights feeds the output '{outputs[0]}' of network "
        f"'{net.name}'; there is no classifier head to replace."
    )


def _module_head(module: nn.Module) -> str:
    from deeptoolbox.hub._registry import FAMILY_HEADS, _family

    classifier = _timm_classifier(module)
    if classifier is not None:
        return classifier

    path = FAMILY_HEADS.get(_family(type(module).__module__))
    if path is not None:
        try:
            module.get_submodule(path)
            return path
        except AttributeError:
            pass
    found = [n for n, m in module.named_modules() if isinstance(m, nn.Linear | nn.Conv2d) and n]
    if not found:
        raise OptionError(
            f"find_head: {type(module).__name__} has no Linear or Conv2d layer to replace; "
            "name the module with layer='...'."
        )
    return found[-1]


def _timm_classifier(module: nn.Module) -> str | None:
    """The path of the head a timm-style model names with ``get_classifier()``, if any."""
    get_classifier = getattr(module, "get_classifier", None)
    if not callable(get_classifier):
        return None
    try:
        head = get_classifier()
    except Exception:  # noqa: BLE001 - a method of that name that does something else
        return None
    return next((n for n, m in module.named_modules() if m is head and n), None)


def find_head(net: nn.Module) -> str:
    """Name of the classifier head: the last learnable layer feeding the output.

    For a Network, the search walks back from its output through parameter-free layers
    (softmax, flatten, pooling, dropout...). For a plain module, it is the module a timm-style
    ``get_classifier()`` returns, the registered family's head (``fc`` for ResNet,
    ``classifier.3`` for MobileNet v3...) or the last Linear / Conv2d.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8, name="fc"), L.Softmax()])
        >>> find_head(net)
        'fc'
    """
    return _network_head(net) if isinstance(net, Network) else _module_head(net)


def _torch_head(old: nn.Module, units: int) -> nn.Module | None:
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, units, bias=old.bias is not None)
    if isinstance(old, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return type(old)(
            old.in_channels, units, old.kernel_size, stride=old.stride, padding=old.padding,
            dilation=old.dilation, bias=old.bias is not None, padding_mode=old.padding_mode,
        )  # fmt: skip
    return None


def _new_head(old: nn.Module, units: int, name: str) -> nn.Module:
    """A fresh layer like ``old`` with ``units`` outputs (weights newly initialized)."""
    config = getattr(old, "get_config", None)
    settings = config() if callable(config) else None
    inner = getattr(old, "module", None)
    if isinstance(settings, dict) and "units" in settings:  # Dense
        return type(old).from_config({**settings, "units": units, "name": name})
    if isinstance(settings, dict) and "filters" in settings:  # Conv1d/2d/3d
        return type(old).from_config({**settings, "filters": units, "groups": 1, "name": name})
    if isinstance(settings, dict) and isinstance(settings.get("module_arguments"), dict):
        key = "out_features" if isinstance(inner, nn.Linear) else "out_channels"
        if key in settings["module_arguments"]:  # interop's TorchModule wrapping Linear / Conv
            arguments = {**settings["module_arguments"], key: units}
            return type(old).from_config({**settings, "module_arguments": arguments, "name": name})
    replacement = _torch_head(old, units)
    if replacement is not None:
        return replacement
    raise OptionError(
        f"adapt: cannot resize layer '{name}' ({type(old).__name__}) to {units} outputs: only "
        "dense / linear and convolution heads can be replaced. Replace it yourself with "
        "net.replace_layer(name, new_layer)."
    )


def _adapted_layer(old: nn.Module, units: int, name: str) -> nn.Module:
    """The replacement of layer ``old``; a whole model wrapped by from_torch gets its own head
    replaced inside."""
    from deeptoolbox.interop import OpaqueModule

    if not isinstance(old, OpaqueModule):
        return _new_head(old, units, name)
    inner = old.module
    _replace_in_module(inner, _module_head(inner), units)
    return OpaqueModule(
        inner, arguments=old.arguments, keywords=old.keywords, num_inputs=old.num_inputs,
        output_index=old.output_index, input_dtypes=old.input_dtypes, name=name,
    )  # fmt: skip


def _class_list(classes: Sequence[str] | int) -> tuple[int, list[str] | None]:
    if isinstance(classes, int) and not isinstance(classes, bool):
        if classes < 1:
            raise OptionError(f"adapt: `classes` must be >= 1. Received: classes={classes}.")
        return classes, None
    if isinstance(classes, str) or not isinstance(classes, Iterable):
        raise OptionError(
            "adapt: `classes` must be a list of class names or a number of classes. Received: "
            f"{classes!r}."
        )
    names = [str(c) for c in classes]
    if not names:
        raise OptionError("adapt: `classes` is empty; give at least one class name.")
    return len(names), names


def _replace_in_module(module: nn.Module, path: str, units: int) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = module.get_submodule(parent_path) if parent_path else module
    old = module.get_submodule(path)
    new = _torch_head(old, units)
    if new is None:
        raise OptionError(
            f"adapt: cannot resize module '{path}' ({type(old).__name__}); only Linear and "
            "convolution heads can be replaced."
        )
    setattr(parent, leaf, new.to(next(old.parameters()).device))


def adapt(
    net: nn.Module,
    classes: Sequence[str] | int,
    *,
    layer: str | None = None,
    learn_rate_factor: float | None = None,
) -> nn.Module:
    """Replace the classifier head of ``net`` for new classes (MATLAB's ``replaceLayer`` step
    of transfer learning); returns ``net``, changed in place.

    The head (``layer``, default :func:`find_head`) is replaced by a freshly initialized layer
    of the same kind with one output per class, keeping its name and connections, so a final
    Softmax stays in place. ``net.classes`` is set to the new class names. ``learn_rate_factor``
    lets the new layer learn faster than the pretrained ones in
    :func:`deeptoolbox.training.train`, as MATLAB's examples do with a factor of 10. A plain
    module with a timm-style ``reset_classifier(num_classes)`` (and ``get_classifier()``) gets
    its head rebuilt by that method, as timm intends; the factor is kept on the module for its
    new head.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(10, name="fc")])
        >>> net = adapt(net, ["cat", "dog", "bird"], learn_rate_factor=10)
        >>> net(torch.zeros(2, 4)).shape, net.classes, net.learn_rate_factor("fc")
        (torch.Size([2, 3]), ['cat', 'dog', 'bird'], 10.0)
    """
    units, names = _class_list(classes)
    if not isinstance(net, Network):
        return _adapt_module(net, units, names, layer, learn_rate_factor)
    name = layer if layer is not None else find_head(net)
    old = net.layer(name)
    net.replace_layer(name, {name: _adapted_layer(old, units, name)})
    net.classes = names
    if learn_rate_factor is not None:
        net.set_learn_rate_factor(name, learn_rate_factor)
    return net


def _adapt_module(
    module: nn.Module, units: int, names: list[str] | None, layer: str | None,
    factor: float | None,
) -> nn.Module:  # fmt: skip
    """adapt() on a plain module: its own ``reset_classifier`` (timm) if it has one."""
    reset = getattr(module, "reset_classifier", None)
    if layer is None and callable(reset) and _timm_classifier(module) is not None:
        reset(units)  # timm rebuilds the head (and its pooling) itself
        layer = _timm_classifier(module)
    else:
        layer = layer if layer is not None else find_head(module)
        _replace_in_module(module, layer, units)
    if names is not None:
        module.classes = names
    if factor is not None:
        _check_factor(factor)
        factors = dict(getattr(module, LEARN_RATE_FACTORS, None) or {})
        setattr(module, LEARN_RATE_FACTORS, factors | {layer: float(factor)})
    return module


def _check_factor(factor: float) -> None:
    if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
        raise OptionError(
            f"adapt: `learn_rate_factor` must be a number >= 0. Received: {factor!r}."
        )


def _module_freeze(module: nn.Module, up_to: str | None, names: list[str] | None) -> None:
    if up_to is None and names is None:  # everything but the head, root parameters included
        head = _module_head(module)
        for name, parameter in module.named_parameters():
            if not name.startswith(head + "."):
                parameter.requires_grad_(False)
        return
    order = [n for n, _ in module.named_modules()]
    unknown = [n for n in ([up_to] if up_to is not None else names or []) if n not in order]
    if unknown:
        raise LayerNotFoundError(
            f"freeze: {type(module).__name__} has no module {unknown[0]!r}. Modules: "
            f"{order[1:20]}..."
        )
    if up_to is not None:  # parameters held by the model itself (ViT's class token) come first
        chosen = order[1 : order.index(up_to) + 1]
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
    else:
        chosen = names or []
    for path in chosen:
        for parameter in module.get_submodule(path).parameters():
            parameter.requires_grad_(False)


def freeze(
    net: nn.Module,
    up_to: str | None = None,
    *,
    layers: str | Iterable[str] | None = None,
) -> nn.Module:
    """Freeze layers so training leaves their weights alone (MATLAB's ``freezeWeights``).

    ``up_to``: freeze that layer and every layer before it in layer order. ``layers``: freeze
    exactly these. Neither: freeze everything except the head (:func:`find_head`), the usual
    setting when a pretrained network serves as a fixed feature extractor. Returns ``net``.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8, name="a"), L.Dense(3, name="b")])
        >>> freeze(net, up_to="a").frozen_layers
        ['featureinput_1', 'a']
    """
    if up_to is not None and layers is not None:
        raise OptionError("freeze: give `up_to` or `layers`, not both.")
    names = None if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    if not isinstance(net, Network):
        _module_freeze(net, up_to, names)
        return net
    order = net.layer_names
    if up_to is not None:
        net.layer(up_to)
        names = order[: order.index(up_to) + 1]
    elif names is None:
        head = find_head(net)
        names = [n for n in order if n != head]
    return net.freeze(names)


def set_learn_rate_factor(net: nn.Module, layers: str | Iterable[str], factor: float) -> nn.Module:
    """Scale the learning rate of ``layers`` by ``factor`` in :func:`deeptoolbox.training.train`
    (MATLAB's ``setLearnRateFactor``); 0 keeps them fixed. Returns ``net``.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(3, name="fc")])
        >>> set_learn_rate_factor(net, "fc", 10).learn_rate_factor("fc")
        10.0
    """
    if not isinstance(net, Network):
        raise OptionError(
            f"set_learn_rate_factor: learn-rate factors of any layer are kept by a Network; "
            f"received a {type(net).__name__}. Convert it with deeptoolbox.interop.from_torch, "
            "use adapt(module, classes, learn_rate_factor=...) for a new head, or give the "
            "optimizer parameter groups with their own 'lr' yourself."
        )
    return net.set_learn_rate_factor(layers, factor)
