"""The designer's start page: the hub's pretrained architectures, opened with their weights
when the weights cache has them and with random weights otherwise (nothing is downloaded from
the browser)."""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from deeptoolbox import hub
from deeptoolbox.errors import OptionError


class PretrainedRequest(BaseModel):
    """The body of ``POST /api/pretrained``."""

    name: str


def weights_cached(info: hub.ModelInfo) -> bool:
    """Whether the weights cache holds ``info``'s default weights file.

    Example:
        >>> weights_cached(hub.model_info("resnet18")) in (True, False)
        True
    """
    return bool(info.file_name) and (hub.cache_dir() / str(info.file_name)).is_file()


def pretrained_models() -> list[dict[str, Any]]:
    """The registry's architectures as rows of the start page (name, family, size, accuracy,
    whether the weights are cached).

    Example:
        >>> rows = pretrained_models()
        >>> row = next(r for r in rows if r["name"] == "resnet18")
        >>> row["family"], row["input_size"]
        ('resnet', [3, 224, 224])
    """
    return [
        {"name": info.name, "family": info.family, "parameters": info.parameters,
         "input_size": list(info.input_size),
         "top1": (info.accuracy or {}).get("top1"), "cached": weights_cached(info)}
        for info in hub.list_pretrained()
    ]  # fmt: skip


def open_pretrained(name: str) -> Any:
    """``name`` from the hub as a Network: its published weights when cached, else random
    weights with a warning that says where the weights file goes."""
    known = {info.name: info for info in hub.list_pretrained()}
    info = known.get(name)
    if info is None:
        raise OptionError(f"Network Designer: {name!r} is not a pretrained architecture of the "
                          "hub; the start page lists them (hub.list_pretrained()).")  # fmt: skip
    if weights_cached(info):
        return hub.pretrained(name)
    warnings.warn(
        f"{name} opened with random weights: the weights cache ({hub.cache_dir()}) has no "
        f"{info.file_name}. Run dtb.pretrained({name!r}) once on a machine with internet, or "
        "copy the file there, to open it with its published weights.",
        stacklevel=2,
    )
    return hub.pretrained(name, weights=None)


def add_hub_routes(app: FastAPI) -> None:
    """``/api/pretrained``: the start page's list, and opening one of them (undoable)."""
    from deeptoolbox.apps._routes import edit_with_notes

    session = app.state.session

    @app.get("/api/pretrained", summary="the hub's pretrained architectures")
    def get_pretrained() -> dict[str, Any]:
        return {"models": pretrained_models(), "cache": str(hub.cache_dir())}

    @app.post("/api/pretrained", summary="open a pretrained architecture (undoable)")
    def post_pretrained(request: PretrainedRequest) -> dict[str, Any]:
        return edit_with_notes(lambda: session.replace(open_pretrained(request.name)))
