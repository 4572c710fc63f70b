"""PyTorch interoperability: ``from_torch`` (any ``nn.Module``), ``import_pytorch``
(TorchScript, ``.pt2``), ``export_pytorch`` and the original state-dict keys of converted
modules. The same names are in :mod:`deeptoolbox.interop`.

Example:
    >>> import torch
    >>> from deeptoolbox.interop.torch import from_torch
    >>> net = from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2)), torch.zeros(1, 3))
    >>> net(torch.zeros(4, 3)).shape
    torch.Size([4, 2])
"""

from deeptoolbox.interop.torch._api import export_pytorch as export_pytorch
from deeptoolbox.interop.torch._api import from_torch as from_torch
from deeptoolbox.interop.torch._api import import_pytorch as import_pytorch
from deeptoolbox.interop.torch._keys import load_original_state_dict as load_original_state_dict
from deeptoolbox.interop.torch._keys import original_state_dict as original_state_dict
from deeptoolbox.interop.torch._keys import original_state_dict_keys as original_state_dict_keys

__all__ = [
    "from_torch",
    "import_pytorch",
    "export_pytorch",
    "original_state_dict",
    "original_state_dict_keys",
    "load_original_state_dict",
]
