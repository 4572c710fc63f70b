"""Optimizers from TrainingOptions, honouring frozen layers and per-layer learn-rate factors."""

from __future__ import annotations

import math

import torch

from deeptoolbox.errors import OptionError
from deeptoolbox.network._network import Network
from deeptoolbox.training._options import TrainingOptions

__all__ = ["param_groups", "make_optimizer", "clip_gradients", "frozen_norm_layers"]


LEARN_RATE_FACTORS = "_deeptoolbox_learn_rate_factors"  # plain modules: path -> factor


def _named_layers(net: torch.nn.Module):
    if isinstance(net, Network):
        for name, layer in net.layers.items():
            yield name, layer, net.learn_rate_factor(name)
    else:  # submodules given a factor (hub.adapt's new head) first, then the rest
        for path, factor in (getattr(net, LEARN_RATE_FACTORS, None) or {}).items():
            yield path, net.get_submodule(path), factor
        yield "", net, 1.0


def param_groups(net: torch.nn.Module, options: TrainingOptions) -> list[dict]:
    """One group per (learn-rate factor, weight decay) pair; factor-0 and frozen layers left out.

    L2 regularization applies to weights (tensors with 2 or more dimensions), not to biases
    and normalization offsets/scales, as MATLAB's default L2 factors do.
    """
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for _, layer, factor in _named_layers(net):
        if factor == 0:
            seen.update(id(p) for p in layer.parameters())
            continue
        for parameter in layer.parameters():
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            decay = options.l2_regularization if parameter.dim() > 1 else 0.0
            groups.setdefault((factor, decay), []).append(parameter)
    if not groups:
        raise OptionError(
            "train: the network has no trainable parameters: every layer is frozen or has a "
            "learn-rate factor of 0. Unfreeze some layers (net.unfreeze(...))."
        )
    return [
        {"params": params, "lr": options.learn_rate * factor, "weight_decay": decay,
         "lr_factor": factor}
        for (factor, decay), params in groups.items()
    ]  # fmt: skip


def make_optimizer(net: torch.nn.Module, options: TrainingOptions) -> torch.optim.Optimizer:
    """The torch optimizer for ``options.solver``."""
    groups = param_groups(net, options)
    lr, solver = options.learn_rate, options.solver
    squared = options.squared_gradient_decay_factor
    if solver == "sgdm":
        return torch.optim.SGD(groups, lr=lr, momentum=options.momentum)
    if solver in ("adam", "adamw"):
        betas = (options.gradient_decay_factor, 0.999 if squared is None else squared)
        kind = torch.optim.Adam if solver == "adam" else torch.optim.AdamW
        return kind(groups, lr=lr, betas=betas, eps=options.epsilon)
    if solver == "rmsprop":
        alpha = 0.9 if squared is None else squared
        return torch.optim.RMSprop(groups, lr=lr, alpha=alpha, eps=options.epsilon)
    if len(groups) > 1 and len({g["lr_factor"] for g in groups}) > 1:
        raise OptionError(
            "TrainingOptions: `solver`='lbfgs' uses one learn rate for all parameters, but the "
            "network sets different learn-rate factors. Use another solver or equal factors."
        )
    params = [p for g in groups for p in g["params"]]
    return torch.optim.LBFGS(params, lr=lr * groups[0]["lr_factor"], line_search_fn="strong_wolfe")


def clip_gradients(optimizer: torch.optim.Optimizer, threshold: float, method: str) -> None:
    """Clip gradients in place: per-parameter L2 norm, global L2 norm, or absolute value."""
    if math.isinf(threshold):
        return
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if method == "global-l2norm":
        torch.nn.utils.clip_grad_norm_(params, threshold)
    elif method == "absolute-value":
        torch.nn.utils.clip_grad_value_(params, threshold)
    else:
        for parameter in params:
            torch.nn.utils.clip_grad_norm_([parameter], threshold)


def frozen_norm_layers(net: torch.nn.Module) -> list[torch.nn.Module]:
    """Frozen layers with running statistics: kept in eval mode so their statistics stay fixed.

    In a plain module, a frozen norm layer is one whose own parameters are all frozen
    (``requires_grad=False``, as :func:`deeptoolbox.hub.freeze` leaves them).
    """
    if not isinstance(net, Network):
        return [
            m for m in net.modules()
            if any(n.startswith("running_") for n, _ in m.named_buffers(recurse=False))
            and list(m.parameters(recurse=False))
            and not any(p.requires_grad for p in m.parameters(recurse=False))
        ]  # fmt: skip
    return [
        net.layer(name) for name in net.frozen_layers
        if any(n.startswith("running_") for n, _ in net.layer(name).named_buffers())
    ]  # fmt: skip
