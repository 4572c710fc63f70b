"""Where networks run: the device choice and placement that training and inference share.

A low-level module (it depends on nothing above ``errors``), so ``training`` and
``inference`` both import it and neither imports the other for it.
"""

from __future__ import annotations

import torch

from deeptoolbox.errors import OptionError

__all__ = ["best_device", "gpu_device", "choose_device", "place_network", "network_device"]


def best_device() -> torch.device:
    """The fastest device present: CUDA, then Apple MPS, then the CPU.

    Example:
        >>> best_device().type in ("cuda", "mps", "cpu")
        True
    """
    return gpu_device() or torch.device("cpu")


def gpu_device() -> torch.device | None:
    """The GPU present (CUDA, then Apple MPS), or None without one.

    Example:
        >>> gpu_device() is None or gpu_device().type in ("cuda", "mps")
        True
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return None


def network_device(net: torch.nn.Module) -> torch.device | None:
    """The device of the first parameter or buffer of ``net`` (None for a module without any).

    Example:
        >>> network_device(torch.nn.Linear(2, 2)).type, network_device(torch.nn.ReLU())
        ('cpu', None)
    """
    for tensor in [*net.parameters(), *net.buffers()]:
        return tensor.device
    return None


def choose_device(
    net: torch.nn.Module, device: str | torch.device, where: str = "predict"
) -> torch.device:
    """The device ``net`` should run on: ``device``, or for "auto" the GPU the network is
    already on, else :func:`best_device`.

    Example:
        >>> choose_device(torch.nn.Linear(2, 2), "cpu").type
        'cpu'
        >>> choose_device(torch.nn.Linear(2, 2), "tpu")
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: predict: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Received: device='tpu'.
    """
    current = next(iter(net.parameters()), None)
    if isinstance(device, str) and device == "auto":
        if current is not None and current.device.type != "cpu":
            return current.device
        return best_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise OptionError(
            f"{where}: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Received: "
            f"device={device!r}."
        ) from err


def place_network(
    net: torch.nn.Module, device: str | torch.device, where: str = "predict"
) -> tuple[torch.device, torch.dtype]:
    """Move ``net`` to the chosen device; return that device and the dtype inputs should have.

    Example:
        >>> place_network(torch.nn.Linear(2, 2), "cpu")
        (device(type='cpu'), torch.float32)
    """
    target = choose_device(net, device, where)
    net.to(target)
    reference = next(iter(net.parameters()), None)
    return target, reference.dtype if reference is not None else torch.get_default_dtype()
