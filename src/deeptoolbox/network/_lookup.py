"""Finding a layer or submodule by name in a Network or any torch module."""

from __future__ import annotations

from torch import nn

from deeptoolbox.errors import LayerNotFoundError

__all__ = ["find_module"]


def find_module(net: nn.Module, name: str, *, where: str, noun: str = "module") -> nn.Module:
    """The layer ``name`` of a Network, or the submodule at path ``name`` of another module;
    ``where`` starts the error ("has no <noun> ..."), which lists the module's paths.

    Example:
        >>> from torch import nn
        >>> find_module(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), "1", where="demo")
        ReLU()
    """
    from deeptoolbox.network._network import Network

    if isinstance(net, Network):
        return net.layer(name)
    try:
        return net.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in net.named_modules() if n]
        raise LayerNotFoundError(
            f"{where} ({type(net).__name__}) has no {noun} {name!r}. {noun.capitalize()}s: "
            f"{names[:30]}{'...' if len(names) > 30 else ''}"
        ) from None
