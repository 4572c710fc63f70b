"""Compile generated code and compare it with the network it came from."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from deeptoolbox.deploy._cbuild import compile_c


def compare_with_network(net: nn.Module, folder: str | os.PathLike, data: Any = None) -> str:
    """Compile ``folder``, run it and the network on the same inputs, describe the difference.

    The inputs are the first observations of ``data`` when given (the calibration data of
    int8 code), else standard normal values.
    """
    code = compile_c(folder)
    manifest = code.manifest
    batch = manifest["batch"]
    items = data if isinstance(data, list | tuple) else ([data] if data is not None else None)
    generator = torch.Generator().manual_seed(0)
    inputs = []
    for index, port in enumerate(manifest["inputs"]):
        if items is not None and len(items[index]) >= batch:
            x = torch.as_tensor(np.asarray(items[index][:batch], dtype=np.float32))
        else:
            x = torch.randn(batch, *port["shape"], generator=generator)
        inputs.append(x.reshape(batch, *port["shape"]))
    got = code.predict(*[x.numpy() for x in inputs])
    got = got if isinstance(got, tuple) else (got,)
    net.eval()
    with torch.no_grad():
        want = net(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    lines = []
    for port, g, w in zip(manifest["outputs"], got, want, strict=True):
        w = w.detach().cpu().numpy().reshape(g.shape)
        error = float(np.abs(g - w).max())
        scale = float(np.abs(w).max()) or 1.0
        lines.append(
            f"checked output '{port['layer']}': compiled C vs network, max abs "
            f"difference {error:.3g} ({error / scale:.2g} of the output scale)"
        )
    return "\n".join(lines)
