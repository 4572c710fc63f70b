"""A converted network's tensors under the original module's ``state_dict`` keys.

:func:`~deeptoolbox.interop.from_torch` records, in ``net.metadata["original_state_dict_keys"]``
(saved with the network), which network tensor holds each tensor of the original module:
``{"layer1.0.conv1.weight": "layers.layer1_0_conv1.weight"}``, or, for a tensor split over
several layers (an attention layer's ``in_proj_weight`` into query, key and value weights),
``{"parts": [["layers.attn.query_weight", 0, 16], ...]}`` (rows ``start:stop``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from deeptoolbox.errors import OptionError
from deeptoolbox.interop.torch._map import Part
from deeptoolbox.network import Network

KEYS = "original_state_dict_keys"


def _storage(tensor: torch.Tensor) -> tuple:
    return (tensor.device, tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))


def key_map(module: nn.Module, origins: Mapping[str, Any]) -> dict[str, Any]:
    """Original ``state_dict`` key -> network key (or parts), from the converter's origins.

    Tensors are matched by identity, else by storage (a program's copy of the same memory).

    Example:
        >>> lin = nn.Linear(2, 3)
        >>> key_map(lin, {"layers.fc.weight": lin.weight, "layers.fc.bias": lin.bias})
        {'weight': 'layers.fc.weight', 'bias': 'layers.fc.bias'}
    """
    whole: dict[Any, str] = {}
    parts: dict[Any, dict[tuple[int, int], str]] = {}
    for net_key, value in origins.items():
        if isinstance(value, Part):
            for ident in (id(value.tensor), _storage(value.tensor)):
                parts.setdefault(ident, {}).setdefault((value.start, value.stop), net_key)
        else:
            for ident in (id(value), _storage(value)):
                whole.setdefault(ident, net_key)
    found: dict[str, Any] = {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        net_key = whole.get(id(tensor)) or whole.get(_storage(tensor))
        if net_key is not None:
            found[key] = net_key
            continue
        pieces = parts.get(id(tensor)) or parts.get(_storage(tensor))
        rows = sorted(pieces.items()) if pieces else []
        if (
            rows
            and rows[0][0][0] == 0
            and rows[-1][0][1] == tensor.shape[0]
            and all(a[0][1] == b[0][0] for a, b in zip(rows, rows[1:], strict=False))
        ):
            found[key] = {"parts": [[name, start, stop] for (start, stop), name in rows]}
    return found


def untied(net: Network, origins: Mapping[str, Any]) -> list[str]:
    """Network keys holding copies of one original tensor instead of the tensor itself.

    Example:
        >>> untied(Network(), {})
        []
    """
    state = net.state_dict(keep_vars=True)
    holders: dict[tuple, dict[int, str]] = {}
    for net_key, value in origins.items():
        ident = (
            (id(value.tensor), value.start, value.stop) if isinstance(value, Part) else (id(value),)
        )
        if net_key in state:
            holders.setdefault(ident, {}).setdefault(id(state[net_key]), net_key)
    return sorted(k for group in holders.values() if len(group) > 1 for k in group.values())


def warn_untied(module: nn.Module, net: Network, origins: Mapping[str, Any]) -> None:
    """Warn, naming them, when shared tensors of ``module`` became separate copies."""
    copies = untied(net, origins)
    if copies:
        warnings.warn(
            f"from_torch: {type(module).__name__} uses some tensors at several places, and the "
            f"network holds separate copies of them ({', '.join(copies)}): outputs match, but "
            "training updates the copies separately.",
            UserWarning,
            stacklevel=3,
        )


def original_state_dict_keys(net: Network) -> dict[str, Any]:
    """Which network tensor holds each tensor of the module ``net`` was converted from.

    Example:
        >>> import torch
        >>> from deeptoolbox.interop import from_torch
        >>> net = from_torch(torch.nn.Sequential(torch.nn.Linear(2, 3)), torch.zeros(1, 2))
        >>> original_state_dict_keys(net)
        {'0.weight': 'layers.layer_0.weight', '0.bias': 'layers.layer_0.bias'}
    """
    mapping = net.metadata.get(KEYS) if isinstance(net, Network) else None
    if not isinstance(mapping, dict):
        raise OptionError(
            f"original_state_dict_keys: network '{getattr(net, 'name', net)}' has no record of "
            f"an original module's keys (net.metadata[{KEYS!r}]); only networks made by "
            "from_torch (or import_pytorch of a .pt2 file) have one."
        )
    return dict(mapping)


def original_state_dict(net: Network) -> dict[str, torch.Tensor]:
    """The network's tensors under the original module's keys: ``module.load_state_dict(...)``.

    Example:
        >>> import torch
        >>> from deeptoolbox.interop import from_torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3))
        >>> net = from_torch(model, torch.zeros(1, 2))
        >>> model.load_state_dict(original_state_dict(net))
        <All keys matched successfully>
    """
    state = net.state_dict()
    found = {}
    for key, target in original_state_dict_keys(net).items():
        if isinstance(target, str):
            found[key] = state[target]
        else:
            found[key] = torch.cat([state[name] for name, _, _ in target["parts"]])
    return found


def load_original_state_dict(
    net: Network, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True
) -> Network:
    """Load a ``state_dict`` of the original module (its own keys) into the converted network.

    With ``strict=True`` (default) every key must be known and every known key given, as
    ``nn.Module.load_state_dict`` asks. Returns the network.

    Example:
        >>> import torch
        >>> from deeptoolbox.interop import from_torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3))
        >>> net = from_torch(model, torch.zeros(1, 2))
        >>> _ = torch.nn.init.zeros_(model[0].weight)
        >>> float(load_original_state_dict(net, model.state_dict()).layer("layer_0").weight.detach().sum())
        0.0
    """
    mapping = original_state_dict_keys(net)
    missing = sorted(set(mapping) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(mapping))
    if strict and (missing or unexpected):
        raise OptionError(
            f"load_original_state_dict: the state_dict does not match the module network "
            f"'{net.name}' was converted from (missing keys: {missing or 'none'}; unknown "
            f"keys: {unexpected or 'none'}). Pass strict=False to load the keys that match."
        )
    state = net.state_dict(keep_vars=True)
    with torch.no_grad():
        for key, value in state_dict.items():
            target = mapping.get(key)
            if target is None:
                continue
            pieces = [[target, 0, None]] if isinstance(target, str) else target["parts"]
            for name, start, stop in pieces:
                source = value if stop is None else value[start:stop]
                if state[name].shape != source.shape:
                    raise OptionError(
                        f"load_original_state_dict: '{key}' has size {tuple(value.shape)}; "
                        f"the network's '{name}' needs {tuple(state[name].shape)}."
                    )
                state[name].copy_(source)
    return net
