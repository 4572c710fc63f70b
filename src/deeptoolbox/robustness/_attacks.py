"""Adversarial examples (FGSM, BIM, PGD in the L-inf and L2 norms) and adversarial training.

All attacks share one call shape, ``find_adversarial(net, x, target, epsilon, method=...)``, and
work on any ``torch.nn.Module`` that returns class scores; a final softmax of a toolbox Network
or ``nn.Sequential`` is removed so the attack works on logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deeptoolbox._deprecation import renamed_arguments
from deeptoolbox.data._adapter import input_tensor
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness._graph import device_of, dtype_of, logits_function
from deeptoolbox.robustness._labels import class_indices

__all__ = ["AdversarialResult", "AdversarialTraining", "find_adversarial"]

METHODS = ("fgsm", "bim", "pgd")
NORMS = ("linf", "l2")


@dataclass
class AdversarialResult:
    """What :func:`find_adversarial` found, one entry per observation.

    Attributes:
        inputs: the adversarial inputs (the original input where the attack failed... the last
            attempt is kept either way, within the norm ball and input range).
        success: True where the prediction was changed (or, targeted, reached the target).
        predictions: class predicted for each adversarial input.
        original_predictions: class predicted for each original input.
        perturbation_norm: size of each perturbation in the attack's norm.

    Example:
        >>> import torch
        >>> r = AdversarialResult(torch.zeros(2, 3), torch.tensor([True, False]),
        ...                       torch.tensor([1, 0]), torch.tensor([0, 0]), torch.zeros(2))
        >>> r.success_rate
        0.5
    """

    inputs: torch.Tensor
    success: torch.Tensor
    predictions: torch.Tensor
    original_predictions: torch.Tensor
    perturbation_norm: torch.Tensor

    @property
    def success_rate(self) -> float:
        """Fraction of observations where the attack succeeded."""
        return float(self.success.float().mean()) if self.success.numel() else 0.0


def _check(method: str, norm: str, epsilon: float, steps: int, input_range) -> None:
    if method not in METHODS:
        raise OptionError(
            f"find_adversarial: `method` must be one of {METHODS}. Received: method={method!r}."
        )
    if norm not in NORMS:
        raise OptionError(
            f"find_adversarial: `norm` must be one of {NORMS}. Received: norm={norm!r}."
        )
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or epsilon < 0:
        raise OptionError(
            f"find_adversarial: `epsilon` must be a number >= 0. Received: epsilon={epsilon!r}."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise OptionError(f"find_adversarial: `steps` must be a positive int. Received: {steps!r}.")
    if input_range is not None and (len(input_range) != 2 or input_range[0] >= input_range[1]):
        raise OptionError(
            "find_adversarial: `input_range` must be (low, high) with low < high, or None. "
            f"Received: input_range={input_range!r}."
        )


def _norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _per_sample(_norm(grad, "l2").clamp_min(1e-12), grad)


def _project(x0: torch.Tensor, x: torch.Tensor, epsilon: float, norm: str, input_range):
    delta = x - x0
    if norm == "linf":
        delta = delta.clamp(-epsilon, epsilon)
    else:
        scale = (epsilon / _norm(delta, "l2").clamp_min(1e-12)).clamp(max=1.0)
        delta = delta * _per_sample(scale, delta)
    x = x0 + delta
    return x if input_range is None else x.clamp(*input_range)


def _random_start(x0: torch.Tensor, epsilon: float, norm: str, generator) -> torch.Tensor:
    noise = torch.rand(x0.shape, generator=generator, device="cpu").to(x0) * 2 - 1
    if norm == "l2":
        noise = noise / _per_sample(_norm(noise, "l2").clamp_min(1e-12), noise)
        noise = noise * _per_sample(torch.rand(x0.shape[0]).to(x0), noise)
    return x0 + epsilon * noise


@renamed_arguments({"label": "target"})
def find_adversarial(
    net: torch.nn.Module,
    x: torch.Tensor,
    target,
    epsilon: float,
    *,
    method: str = "pgd",
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    targeted=None,
    input_range: tuple[float, float] | None = None,
    seed: int | None = 0,
) -> AdversarialResult:
    """Find inputs within ``epsilon`` of ``x`` that the network misclassifies.

    ``method`` is ``"fgsm"`` (one signed-gradient step), ``"bim"`` (``steps`` small steps from
    ``x``) or ``"pgd"`` (BIM from a random start in the ball); ``norm`` is ``"linf"`` or
    ``"l2"``. ``target`` holds the true class of each observation (indices, or names from
    ``net.classes``; ``label``, its deprecated name, still works with a DeprecationWarning);
    with ``targeted`` (classes too) the attack pushes toward those classes instead. Inputs stay inside
    ``input_range`` (for example ``(0, 1)`` for images). The attack runs on the network's
    device, in one batch, with the network in inference mode.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2)])
        >>> r = find_adversarial(net, torch.zeros(4, 2), torch.zeros(4), 0.1, method="fgsm")
        >>> bool((r.inputs.abs() <= 0.1 + 1e-6).all()), r.success.shape
        (True, torch.Size([4]))
    """
    _check(method, norm, epsilon, steps, input_range)
    device, dtype = device_of(net), dtype_of(net)
    x0 = input_tensor(x, "find_adversarial: `x`").to(device=device, dtype=dtype)
    labels = class_indices("find_adversarial", net, target, x0.shape[0], device)
    targets = None
    if targeted is not None:
        targets = class_indices("find_adversarial", net, targeted, x0.shape[0], device,
                                "targeted")  # fmt: skip
    if step_size is None:
        step_size = epsilon if method == "fgsm" else 2.5 * epsilon / steps
    was_training = net.training
    net.eval()
    try:
        return _attack(
            logits_function(net), x0, labels, targets, float(epsilon), method, norm,
            1 if method == "fgsm" else steps, float(step_size), input_range, seed,
        )  # fmt: skip
    finally:
        net.train(was_training)


def _attack(f, x0, labels, targets, epsilon, method, norm, steps, step_size, input_range, seed):
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        original = f(x0).argmax(1)
    x = _random_start(x0, epsilon, norm, generator) if method == "pgd" else x0.clone()
    x = _project(x0, x, epsilon, norm, input_range)
    best = x.clone()
    found = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = f(x)
            if targets is None:
                loss = F.cross_entropy(logits, labels, reduction="sum")
            else:
                loss = -F.cross_entropy(logits, targets, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        hit = _success(logits.detach(), labels, targets)
        keep = hit & ~found
        best[keep], found = x.detach()[keep], found | hit
        x = _project(x0, x.detach() + step_size * _step(grad, norm), epsilon, norm, input_range)
    with torch.no_grad():
        predictions = f(x).argmax(1)
    hit = _success_from(predictions, labels, targets) & ~found
    best[hit], found = x[hit], found | hit
    best[~found] = x[~found]
    with torch.no_grad():
        predictions = f(best).argmax(1)
    return AdversarialResult(
        best.detach(), _success_from(predictions, labels, targets), predictions, original,
        _norm(best - x0, norm).detach(),
    )  # fmt: skip


def _success(logits, labels, targets) -> torch.Tensor:
    return _success_from(logits.argmax(1), labels, targets)


def _success_from(predictions, labels, targets) -> torch.Tensor:
    if targets is not None:
        return predictions == targets
    return predictions != labels


def box_attack(f, lo, hi, labels, *, steps: int = 20, deadline=None, seed: int = 0):
    """PGD inside the boxes [lo, hi] (any shape), from a random start, against ``labels``.

    Returns (success, points): points stay in their boxes. Stops early at ``deadline``
    (a :class:`~deeptoolbox.robustness._budget.Deadline`).

    Example:
        >>> import torch
        >>> f = torch.nn.Linear(1, 2)
        >>> with torch.no_grad():
        ...     _ = f.weight.copy_(torch.tensor([[1.0], [-1.0]])), f.bias.zero_()
        >>> found, x = box_attack(f, torch.tensor([[-1.0]]), torch.tensor([[1.0]]), torch.tensor([0]))
        >>> bool(found[0]), bool(f(x).argmax(1)[0] == 1), bool(x.abs().max() <= 1)
        (True, True, True)
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(lo.shape, generator=generator, dtype=lo.dtype).to(lo.device)
    x = lo + (hi - lo) * noise
    step = 2.5 * (hi - lo) / 2 / steps
    best = x.clone()
    found = torch.zeros(lo.shape[0], dtype=torch.bool, device=lo.device)
    for _ in range(steps):
        if deadline is not None and deadline.passed:
            break
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = f(x)
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), x)
        hit = logits.detach().argmax(1) != labels
        best[hit & ~found] = x.detach()[hit & ~found]
        found = found | hit
        if bool(found.all()):
            break
        x = torch.minimum(torch.maximum(x.detach() + step * grad.sign(), lo), hi)
    with torch.no_grad():
        hit = (f(x.detach()).argmax(1) != labels) & ~found
    best[hit], found = x.detach()[hit], found | hit
    return found, best.detach()


@dataclass
class AdversarialTraining:
    """Adversarial training settings, to pass as ``TrainingOptions(adversarial=...)``.

    Calling it on a batch returns the batch with a fraction ``mix`` of the observations
    replaced by adversarial examples (FGSM or PGD against the current network); ``train()``
    calls it once per batch, before the forward pass used for the loss.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2)])
        >>> adversarial = AdversarialTraining(method="fgsm", epsilon=0.1, mix=0.5)
        >>> x = torch.zeros(4, 2)
        >>> mixed = adversarial(net, x, torch.tensor([0, 1, 0, 1]))
        >>> mixed.shape, bool((mixed[2:] == x[2:]).all())
        (torch.Size([4, 2]), True)
    """

    method: str = "pgd"
    epsilon: float = 0.03
    mix: float = 0.5
    norm: str = "linf"
    steps: int = 7
    step_size: float | None = None
    input_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.method not in ("fgsm", "pgd", "bim"):
            raise OptionError(
                "AdversarialTraining: `method` must be 'fgsm', 'bim' or 'pgd'. Received: "
                f"method={self.method!r}."
            )
        if (
            isinstance(self.mix, bool)
            or not isinstance(self.mix, int | float)
            or not 0 <= self.mix <= 1
        ):
            raise OptionError(
                f"AdversarialTraining: `mix` must be a number in [0, 1]. Received: mix={self.mix!r}."
            )
        _check(self.method, self.norm, self.epsilon, self.steps, self.input_range)

    def __call__(self, net: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        """Return ``inputs`` with the first ``round(mix * N)`` observations made adversarial."""
        count = round(self.mix * inputs.shape[0])
        if count == 0 or targets is None:
            return inputs
        result = find_adversarial(
            net, inputs[:count].detach(), targets[:count], self.epsilon, method=self.method,
            norm=self.norm, steps=self.steps, step_size=self.step_size,
            input_range=self.input_range, seed=None,
        )  # fmt: skip
        return torch.cat([result.inputs.to(inputs.dtype), inputs[count:]])
