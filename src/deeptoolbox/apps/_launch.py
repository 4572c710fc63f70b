"""Starting the apps: from Python (:func:`designer`, a server in a background thread) and
from the command line (``deeptoolbox app``, in the foreground)."""

from __future__ import annotations

import os
import threading
import time
import webbrowser
from typing import Any

from deeptoolbox.apps._server import AppOptions, create_app
from deeptoolbox.apps._session import DesignerSession
from deeptoolbox.errors import MissingDependencyError, OptionError
from deeptoolbox.network import Network


def _uvicorn() -> Any:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise MissingDependencyError(
            'The deeptoolbox apps need FastAPI and uvicorn: pip install "deeptoolbox[apps]".'
        ) from err
    return uvicorn


class AppHandle:
    """A running app server: its ``url`` (with the token), the designer's current
    ``network``, and :meth:`close`.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> handle = designer(Network([L.FeatureInput(3), L.Dense(2)]), open_browser=False)
        >>> handle.url.startswith("http://127.0.0.1:")
        True
        >>> handle.close().layer_names
        ['featureinput_1', 'dense_1']
    """

    def __init__(self, server: Any, thread: threading.Thread, session: DesignerSession,
                 options: AppOptions) -> None:  # fmt: skip
        self._server, self._thread = server, thread
        self.session, self.options = session, options

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The address to open in a browser, token included."""
        return f"http://127.0.0.1:{self.port}/?token={self.options.token}"

    @property
    def network(self) -> Network:
        """The network as edited so far in the designer."""
        return self.session.network

    def close(self) -> Network:
        """Stop the server; returns the edited network."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        return self.network

    def __repr__(self) -> str:
        return f"AppHandle(url={self.url!r})"


def start_app(
    net: Network | None = None, *, root: str | os.PathLike = ".", port: int = 0,
    open_browser: bool = True, page: str = "designer", runs: str | None = None,
) -> AppHandle:  # fmt: skip
    """Start the apps server on 127.0.0.1 in a background thread and return its handle.

    ``page`` is "designer" or "monitor" (the page the browser opens on).
    """
    uvicorn = _uvicorn()
    if page not in ("designer", "monitor"):
        raise OptionError(f"apps: `page` must be 'designer' or 'monitor'. Received: {page!r}.")
    if net is not None and not isinstance(net, Network):
        raise OptionError(
            f"apps.designer expects a deeptoolbox Network or None. Received: {type(net).__name__}."
            " Convert a torch module first with deeptoolbox.interop.from_torch."
        )
    session = DesignerSession(net)
    options = AppOptions(root=root, runs=runs)
    config = uvicorn.Config(create_app(session, options), host="127.0.0.1", port=port,
                            log_level="warning")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="deeptoolbox-apps", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OptionError(f"apps: the server did not start on port {port} (is it taken?).")
        time.sleep(0.02)
    handle = AppHandle(server, thread, session, options)
    if open_browser:
        webbrowser.open(handle.url + ("#monitor" if page == "monitor" else ""))
    return handle


def designer(
    net: Network | None = None, *, root: str | os.PathLike = ".", port: int = 0,
    open_browser: bool = True,
) -> AppHandle:  # fmt: skip
    """Open the Network Designer on ``net`` (a blank network when None), MATLAB's
    ``deepNetworkDesigner``; ``handle.network`` is the edited network (also returned by
    ``handle.close()``).

    The server listens on 127.0.0.1 only and needs the token in ``handle.url``; files are
    opened and saved only inside ``root``.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> handle = designer(Network([L.FeatureInput(3, name="x")]), open_browser=False)
        >>> _ = handle.session.edit({"op": "add", "type": "Dense", "config": {"units": 2}})
        >>> handle.close().layer_names
        ['x', 'dense_1']
    """
    return start_app(net, root=root, port=port, open_browser=open_browser)


def monitor(
    runs: str | os.PathLike | None = None, *, root: str | os.PathLike = ".", port: int = 0,
    open_browser: bool = True,
) -> AppHandle:  # fmt: skip
    """Open the Training Monitor on a runs folder (inside ``root``; default
    ``root/deeptoolbox-runs``) that :class:`TrainingMonitorLog` callbacks write to.

    Example:
        >>> handle = monitor(open_browser=False)
        >>> handle.url.startswith("http://127.0.0.1:")
        True
        >>> _ = handle.close()
    """
    runs_arg = None if runs is None else str(runs)
    return start_app(None, root=root, port=port, open_browser=open_browser, page="monitor",
                     runs=runs_arg)  # fmt: skip


def app_command(args: Any) -> int:
    """``deeptoolbox app``: serve the apps in the foreground until Ctrl-C."""
    if not 0 <= args.port <= 65535:
        raise OptionError(f"app: --port must be 0 to 65535. Received: {args.port}.")
    net = None
    if args.open:
        from deeptoolbox.apps._files import confined, open_network

        net = open_network(confined(AppOptions(root=args.root).root, args.open))
    handle = start_app(net, root=args.root, port=args.port, open_browser=not args.no_browser,
                       runs=args.runs)  # fmt: skip
    print(f"deeptoolbox app: {handle.url}", flush=True)
    print(f"  files: {handle.options.root}; training runs: {handle.options.runs}", flush=True)
    try:
        while handle._thread.is_alive():
            handle._thread.join(0.5)
    except KeyboardInterrupt:
        handle.close()
    return 0
