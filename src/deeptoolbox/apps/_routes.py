"""The routes of the apps server: designer (graph, library, edits, undo/redo, files) and
Training Monitor (runs, events, stop), plus the built front-end."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from deeptoolbox.apps import _files, _monitor
from deeptoolbox.apps._library import layer_library
from deeptoolbox.apps._session import graph_json, network_from_graph
from deeptoolbox.errors import DeepToolboxError, OptionError
from deeptoolbox.network import Network, to_python

STATIC = Path(__file__).parent / "static"


class Edit(BaseModel):
    """One edit: ``op`` is add, remove, rename, duplicate, connect, disconnect, set,
    replace_head, freeze or learn_rate_factor; the other fields depend on it (``type``,
    ``config``, ``name``, ``new_name``, ``names``, ``source``, ``destination``, ``classes``,
    ``up_to``, ``factor``...)."""

    model_config = ConfigDict(extra="allow")
    op: str = Field(description="the edit to make")


class OpenRequest(BaseModel):
    path: str = Field(description="file or saved-network folder, inside the app's root folder")


class SaveRequest(BaseModel):
    path: str = Field(description="where to write, inside the app's root folder")
    format: str = Field("toolbox", description="toolbox (.zip or folder), onnx or python")


class NewRequest(BaseModel):
    name: str = "network"


def edit_with_notes(action: Any, *args: Any) -> dict[str, Any]:
    """Run a session action; warnings it gives (layers re-initialized) come back as notes.
    Plain ValueError/TypeError/KeyError from a layer's constructor become OptionError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = action(*args)
        except DeepToolboxError:
            raise
        except (ValueError, TypeError, KeyError) as err:
            raise OptionError(str(err)) from err
    result["notes"] = [str(w.message) for w in caught]
    return result


def uploaded_network(data: bytes, filename: str) -> Any:
    """Open an uploaded model file (written to a private temporary folder first)."""
    suffix = Path(filename).suffix.lower()
    if suffix not in _files.OPEN_SUFFIXES:
        raise OptionError(
            f"apps: cannot open the upload {filename!r}: allowed extensions are "
            f"{', '.join(_files.OPEN_SUFFIXES)}.{_files.CODE_HINT}"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        return _files.open_network(path)


def _relative(options: Any, path: Path) -> str:
    return str(path.relative_to(options.root))


def add_designer_routes(app: FastAPI) -> None:
    """Graph, library, edits, undo/redo, open/save/upload and code export."""
    session, options = app.state.session, app.state.options

    @app.get("/api/graph", summary="the graph with live analysis")
    def get_graph() -> dict[str, Any]:
        return edit_with_notes(session.describe)

    @app.put("/api/graph", summary="replace the graph by a network.json description")
    def put_graph(body: Any = Body(...)) -> dict[str, Any]:  # noqa: B008
        return edit_with_notes(lambda: session.replace(network_from_graph(body)))

    @app.get("/api/network.json", summary="the network.json description of the graph")
    def get_network_json() -> dict[str, Any]:
        return graph_json(session.network)

    @app.get("/api/library", summary="the layer library, with each layer's config fields")
    def get_library() -> list[dict[str, Any]]:
        return layer_library()

    @app.post("/api/edit", summary="make one edit (undoable)")
    def post_edit(edit: Edit) -> dict[str, Any]:
        return edit_with_notes(session.edit, edit.model_dump())

    @app.post("/api/undo", summary="undo the last edit")
    def post_undo() -> dict[str, Any]:
        return edit_with_notes(session.undo)

    @app.post("/api/redo", summary="redo the last undone edit")
    def post_redo() -> dict[str, Any]:
        return edit_with_notes(session.redo)

    @app.post("/api/new", summary="start a blank network (undoable)")
    def post_new(request: NewRequest) -> dict[str, Any]:
        return edit_with_notes(lambda: session.replace(Network(name=request.name)))

    @app.post("/api/open", summary="open a model file inside the root folder")
    def post_open(request: OpenRequest) -> dict[str, Any]:
        path = _files.confined(options.root, request.path)
        return edit_with_notes(lambda: session.replace(_files.open_network(path)))

    @app.post("/api/upload", summary="open an uploaded model file (raw bytes in the body)")
    async def post_upload(request: Request, filename: str = Query(...)) -> Any:
        data = await _read_limited(request, options.max_upload_bytes)
        if data is None:
            return JSONResponse(
                {"detail": f"The upload is larger than the limit of "
                           f"{options.max_upload_bytes:,} bytes."}, status_code=413,
            )  # fmt: skip
        return edit_with_notes(lambda: session.replace(uploaded_network(data, filename)))

    @app.post("/api/save", summary="save the network inside the root folder")
    def post_save(request: SaveRequest) -> dict[str, Any]:
        path = _files.confined(options.root, request.path)
        written = _files.save_network(session.network, path, request.format)
        return {"path": _relative(options, Path(written).resolve())}

    @app.get("/api/python", summary="Python code that rebuilds the network (to_python)")
    def get_python() -> dict[str, str]:
        return {"code": to_python(session.network)}

    @app.get("/api/files", summary="model files and folders inside the root folder")
    def get_files(folder: str = ".") -> dict[str, Any]:
        where = _files.confined(options.root, folder)
        if not where.is_dir():
            raise OptionError(f"apps: {folder!r} is not a folder inside the app's root.")
        entries = [
            {"name": p.name, "folder": p.is_dir(), "path": _relative(options, p)}
            for p in sorted(where.iterdir())
            if p.is_dir() or p.suffix.lower() in _files.OPEN_SUFFIXES
        ]
        return {"folder": _relative(options, where) or ".", "entries": entries}


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def add_monitor_routes(app: FastAPI) -> None:
    """Training Monitor: runs, their events, and the Stop button."""
    options = app.state.options

    @app.get("/api/runs", summary="training runs in the runs folder, newest first")
    def get_runs() -> dict[str, Any]:
        return {
            "folder": _relative(options, options.runs),
            "runs": _monitor.list_runs(options.runs),
        }

    @app.get("/api/runs/{run_id}/events", summary="a run's events from line `since` on")
    def get_events(run_id: str, since: int = Query(0, ge=0)) -> dict[str, Any]:
        folder = _monitor.run_folder(options.runs, run_id)
        events = _monitor.read_events(folder, since)
        return {"events": events, "next": since + len(events)}

    @app.post("/api/runs/{run_id}/stop", summary="stop a run at its next iteration")
    def post_stop(run_id: str) -> dict[str, Any]:
        _monitor.request_stop(_monitor.run_folder(options.runs, run_id))
        return {"stop_requested": True}


def add_static(app: FastAPI) -> None:
    """The built front-end: ``/`` (token required) and ``/assets/*``."""
    from fastapi.staticfiles import StaticFiles

    index = STATIC / "index.html"
    if (STATIC / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC / "assets"), name="assets")

    @app.get("/", include_in_schema=False)
    def get_index() -> Any:
        if not index.is_file():
            return HTMLResponse(
                "<h1>deeptoolbox apps</h1><p>The front-end is not built: run <code>make "
                "web</code> in the repository (needs node and npm).</p>", status_code=503,
            )  # fmt: skip
        return FileResponse(index)
