"""The apps' FastAPI server: the JSON API under ``/api/`` and the built front-end.

Every request except the front-end's static assets needs the session token (header
``X-Deeptoolbox-Token`` or query ``token=``), which the app prints in its URL, as Jupyter
does. Files are read and written only inside the root folder the app was started with.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deeptoolbox.apps import _files
from deeptoolbox.apps._session import DesignerSession
from deeptoolbox.errors import (
    DeepToolboxError,
    ExperimentError,
    NetworkFileError,
    OptionError,
    PathOutsideRootError,
    StoreError,
)

TOKEN_HEADER = "X-Deeptoolbox-Token"
_PUBLIC_PREFIXES = ("/assets/",)


@dataclass
class AppOptions:
    """Settings of one app server.

    Example:
        >>> import tempfile
        >>> options = AppOptions(root=tempfile.mkdtemp())
        >>> len(options.token) >= 32, options.max_upload_bytes
        (True, 268435456)
    """

    root: str | Path = "."
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    max_upload_bytes: int = 256 * 2**20
    runs: str | Path | None = None  # Training Monitor runs folder (default: root/deeptoolbox-runs)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.root.is_dir():
            raise OptionError(f"apps: --root must be an existing folder. Received: {self.root}.")
        if not isinstance(self.token, str) or len(self.token) < 16:
            raise OptionError("apps: the access token must be a string of 16 characters or more.")
        if self.max_upload_bytes <= 0:
            raise OptionError(
                f"apps: max_upload_bytes must be positive. Received: {self.max_upload_bytes}."
            )
        runs = self.runs if self.runs is not None else "deeptoolbox-runs"
        self.runs = _files.confined(self.root, str(runs))


def _status(err: Exception) -> int:
    if isinstance(err, PathOutsideRootError):
        return 403
    if isinstance(err, NetworkFileError) and ("no file" in str(err) or "no run" in str(err)):
        return 404
    if isinstance(err, ExperimentError) and (
        " no experiment " in str(err) or " no trial " in str(err) or " stored no " in str(err)
    ):
        return 404
    if isinstance(err, StoreError) and "does not exist" in str(err):
        return 404
    return 400


def create_app(session: DesignerSession | None = None, options: AppOptions | None = None) -> Any:
    """The FastAPI application of the apps (designer and monitor) for one session.

    Example:
        >>> import tempfile
        >>> app = create_app(options=AppOptions(root=tempfile.mkdtemp()))
        >>> "/api/graph" in {route.path for route in app.routes}
        True
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    options = options or AppOptions()
    session = session or DesignerSession()
    app = FastAPI(
        title="deeptoolbox apps",
        description="Network Designer and Training Monitor. Every call needs the session token.",
    )
    app.state.session, app.state.options = session, options
    app.state.labeler = None  # the Labeler's LabelSession, set by apps.labeler
    app.state.signal_labeler = None  # its SignalRegions (signal mode)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        path = request.url.path
        if not path.startswith(_PUBLIC_PREFIXES) and not _has_token(request, options.token):
            return JSONResponse(
                {"detail": "Missing or wrong access token: open the URL the app printed."},
                status_code=401,
            )
        return await call_next(request)

    @app.exception_handler(DeepToolboxError)
    async def toolbox_error(request: Request, err: DeepToolboxError) -> Any:
        return JSONResponse({"detail": str(err), "error": type(err).__name__}, _status(err))

    from deeptoolbox.apps._experiments import add_experiment_routes
    from deeptoolbox.apps._hub import add_hub_routes
    from deeptoolbox.apps._label_proposals import add_proposal_routes
    from deeptoolbox.apps._labeler import add_labeler_routes
    from deeptoolbox.apps._routes import add_designer_routes, add_monitor_routes, add_static
    from deeptoolbox.apps._signal_labels import add_signal_routes

    add_designer_routes(app)
    add_monitor_routes(app)
    add_experiment_routes(app)
    add_hub_routes(app)
    add_labeler_routes(app)
    add_proposal_routes(app)
    add_signal_routes(app)
    add_static(app)
    return app


def _has_token(request: Any, token: str) -> bool:
    given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
    return secrets.compare_digest(given.encode(), token.encode())
