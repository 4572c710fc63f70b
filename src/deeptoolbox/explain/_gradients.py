"""Gradient attribution: saliency, input x gradient, integrated gradients, SmoothGrad (Captum)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.errors import OptionError
from deeptoolbox.explain._common import (
    Scorer,
    Target,
    captum_attr,
    check_positive_int,
    evaluation,
    prepare,
    run,
    target_weights,
)

__all__ = ["gradient_attribution", "GRADIENT_METHODS"]

GRADIENT_METHODS = ("saliency", "input-x-gradient", "integrated-gradients", "smoothgrad")


@renamed_arguments({"samples": "num_samples"})
def gradient_attribution(
    net: nn.Module,
    x: Any,
    target: Target = None,
    *,
    batch_size: int = 64,
    seed: int | None = None,
    method: str = "saliency",
    reduce: str | None = "sum",
    baseline: float | torch.Tensor = 0.0,
    steps: int = 50,
    num_samples: int = 25,
    noise_level: float = 0.15,
    use_logits: bool = True,
) -> torch.Tensor:
    """Attribute the target score to every input element from gradients.

    Methods (Captum is the engine):

    - ``"saliency"``: absolute gradient of the score (Simonyan et al.).
    - ``"input-x-gradient"``: input times gradient.
    - ``"integrated-gradients"``: (x - baseline) times the gradient averaged along the straight
      path from ``baseline`` to x, with ``steps`` points (Sundararajan et al.). The
      attributions add up to score(x) - score(baseline).
    - ``"smoothgrad"``: saliency averaged over ``num_samples`` noisy copies of each
      observation, with Gaussian noise of standard deviation ``noise_level`` x (max - min)
      of that observation (Smilkov et al.). Each observation's noise comes from its own
      stream (``seed`` and its position in the batch), so the maps do not depend on
      ``batch_size``.

    Args:
        net: a deeptoolbox Network or any ``torch.nn.Module``.
        x: a batch (images, volumes, sequences or features), or one observation (Networks).
        target: what to explain, as for :func:`gradcam` (default: the predicted class).
        method: one of ``GRADIENT_METHODS``.
        reduce: ``"sum"`` sums over channels, giving a map (N, H, W) or (N, T); None keeps
            the input's size (features always keep theirs).
        baseline: integrated gradients' starting point: a number or a tensor like ``x``.
        steps: path points of integrated gradients. num_samples / noise_level: SmoothGrad.
        use_logits: when the network ends in a softmax, explain the score before it.
        batch_size: observations per pass (the maps do not depend on it).
        seed: SmoothGrad's noise (None: drawn from torch's global generator); the other
            methods are deterministic and ignore it.

    Deprecated names (they still work, with a DeprecationWarning): ``samples`` for
    ``num_samples``.

    Returns:
        The attribution map, on ``x``'s device.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> from deeptoolbox.explain import gradient_attribution
        >>> net = Network([L.FeatureInput(3), L.Dense(2)])
        >>> x = torch.randn(4, 3)
        >>> ig = gradient_attribution(net, x, target=1, method="integrated-gradients")
        >>> gap = net(x)[:, 1] - net(torch.zeros(4, 3))[:, 1]
        >>> torch.allclose(ig.sum(1), gap, atol=1e-4)
        True
    """
    func = "gradient_attribution"
    prepared = prepare(func, net, x)
    if method not in GRADIENT_METHODS:
        raise OptionError(
            f"{func}: `method` must be one of {list(GRADIENT_METHODS)}. Received: {method!r}."
        )
    if reduce not in ("sum", None):
        raise OptionError(f"{func}: `reduce` must be 'sum' or None. Received: {reduce!r}.")
    batch_size = check_positive_int(func, "batch_size", batch_size)
    steps = check_positive_int(func, "steps", steps, 2)
    num_samples = check_positive_int(func, "num_samples", num_samples)
    baseline = _baseline(func, baseline, prepared.x)
    noise = _Noise(num_samples, noise_level, _base_seed(seed))
    scorer = Scorer(net, func)
    results = []
    with evaluation(net, use_logits):
        for start in range(0, len(prepared.x), batch_size):
            chunk = prepared.x[start : start + batch_size]
            with torch.no_grad():
                output = run(func, net, chunk)
                weights = target_weights(func, net, output, target, start, len(prepared.x))
            base = baseline if baseline.dim() == 0 else baseline[start : start + batch_size]
            results.append(_attribute(scorer, method, chunk, weights, base, steps, noise, start))
    return prepared.to_map(torch.cat(results), reduce)


def _baseline(func: str, baseline: object, x: torch.Tensor) -> torch.Tensor:
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | torch.Tensor):
        raise OptionError(
            f"{func}: `baseline` must be a number or a tensor of the input's size. Received: "
            f"{type(baseline).__name__}."
        )
    value = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if value.dim() == 0:
        return value
    if tuple(value.shape) == tuple(x.shape[1:]):
        value = value.unsqueeze(0)
    try:
        return value.expand_as(x).contiguous()
    except RuntimeError as err:
        raise OptionError(
            f"{func}: `baseline` of size {tuple(value.shape)} does not match the input of size "
            f"{tuple(x.shape)}; give a number, one observation or a whole batch."
        ) from err


def _attribute(
    scorer: Scorer,
    method: str,
    x: torch.Tensor,
    weights: torch.Tensor,
    baseline: torch.Tensor,
    steps: int,
    noise: _Noise,
    start: int,
) -> torch.Tensor:
    attr = captum_attr()
    InputXGradient, IntegratedGradients = attr.InputXGradient, attr.IntegratedGradients
    Saliency = attr.Saliency
    args = (weights,)
    x = x.detach().requires_grad_(True)
    if method == "saliency":
        return Saliency(scorer).attribute(x, additional_forward_args=args, abs=True)
    if method == "input-x-gradient":
        return InputXGradient(scorer).attribute(x, additional_forward_args=args)
    if method == "integrated-gradients":
        base = baseline.item() if baseline.dim() == 0 else baseline
        return IntegratedGradients(scorer).attribute(
            x, baselines=base, additional_forward_args=args, n_steps=steps,
            internal_batch_size=len(x) * max(1, 512 // len(x)),
        )  # fmt: skip
    return _smoothgrad(scorer, x.detach(), weights, noise, start)


@dataclass(frozen=True)
class _Noise:
    num_samples: int
    noise_level: float
    seed: int


def _base_seed(seed: int | None) -> int:
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise OptionError(
            f"gradient_attribution: `seed` must be an int >= 0 or None. Received: seed={seed!r}."
        )
    return seed


def smoothgrad_noise(
    shape: tuple[int, ...], num_samples: int, seed: int, index: int
) -> torch.Tensor:
    """The standard normal noise (num_samples, *shape) of observation ``index`` for ``seed``.

    Example:
        >>> a = smoothgrad_noise((2,), 3, seed=0, index=5)
        >>> a.shape, torch.equal(a, smoothgrad_noise((2,), 3, seed=0, index=5))
        (torch.Size([3, 2]), True)
    """
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return torch.randn((num_samples, *shape), generator=generator)


def _smoothgrad(
    scorer: Scorer, x: torch.Tensor, weights: torch.Tensor, noise: _Noise, start: int
) -> torch.Tensor:
    """Mean absolute gradient over noisy copies, the noise scaled by each observation's range."""
    count, shape = noise.num_samples, tuple(x.shape[1:])
    flat = x.reshape(len(x), -1)
    scale = noise.noise_level * (flat.amax(1) - flat.amin(1)).clamp_min(1e-12)
    draws = torch.stack([
        smoothgrad_noise(shape, count, noise.seed, start + k) for k in range(len(x))
    ]).to(device=x.device, dtype=x.dtype)  # fmt: skip
    noisy = x.unsqueeze(1) + draws * scale.reshape(-1, 1, *([1] * len(shape)))
    noisy = noisy.reshape(-1, *shape).requires_grad_(True)
    repeated = weights.repeat_interleave(count, dim=0)
    grads = (
        captum_attr()
        .Saliency(scorer)
        .attribute(noisy, additional_forward_args=(repeated,), abs=True)
    )
    return grads.reshape(len(x), count, *shape).mean(1)
