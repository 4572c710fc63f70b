"""Starting the apps: from Python (:func:`designer`, a server in a background thread) and
from the command line (``deeptoolbox app``, in the foreground)."""

from __future__ import annotations

import os
import threading
import time
import webbrowser
from pathlib import Path
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
    def labeler(self) -> Any:
        """The Labeler's session (its ``classes``, ``labels``, ``boxes``), or None."""
        return self._server.config.app.state.labeler

    @property
    def signal_labeler(self) -> Any:
        """The Labeler's signal-mode session (regions), or None."""
        return self._server.config.app.state.signal_labeler

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
    labeler: Any = None, signals: Any = None,
) -> AppHandle:  # fmt: skip
    """Start the apps server on 127.0.0.1 in a background thread and return its handle.

    ``page`` is "designer", "monitor" or "labeler" (the page the browser opens on);
    ``labeler`` a :class:`~deeptoolbox.apps._labeler.LabelSession` for the Labeler page.
    """
    uvicorn = _uvicorn()
    if page not in ("designer", "monitor", "labeler"):
        raise OptionError("apps: `page` must be 'designer', 'monitor' or 'labeler'. "
                          f"Received: {page!r}.")  # fmt: skip
    if net is not None and not isinstance(net, Network):
        raise OptionError(
            f"apps.designer expects a deeptoolbox Network or None. Received: {type(net).__name__}."
            " Convert a torch module first with deeptoolbox.interop.from_torch."
        )
    session = DesignerSession(net)
    options = AppOptions(root=root, runs=runs)
    app = create_app(session, options)
    if labeler is not None:
        from deeptoolbox.apps._files import confined

        confined(options.root, str(labeler.folder))  # the folder must lie inside the root
        app.state.labeler = labeler
    if signals is not None:
        from deeptoolbox.apps._files import confined

        confined(options.root, str(signals.folder))
        app.state.signal_labeler = signals
    config = uvicorn.Config(app, host="127.0.0.1", port=port,
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
        webbrowser.open(handle.url + ("" if page == "designer" else f"#{page}"))
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


def labeler(
    data: Any, *, classes: list[str] | None = None, labels: str = "auto",
    root: str | os.PathLike | None = None, port: int = 0, open_browser: bool = True,
    network: Any = None, issues: Any = None, signals: bool = False,
    sample_rate: float = 1.0, threshold: float = 0.5, task: str | None = None,
) -> AppHandle:  # fmt: skip
    """Open the Labeler (MATLAB's Image Labeler) on a folder of images, or on the folder of
    an :class:`~deeptoolbox.data.ImageDatastore`'s files: class labels (class folders or a
    ``labels.csv``) and bounding boxes (``boxes.json``, COCO), saved atomically at every
    change, with undo. ``root`` (default: the folder) is the only folder the server touches.
    A datastore whose labels come from a CSV (``ds.label_file``) opens in csv mode on its
    folder, saving to that CSV.

    ``signals=True`` labels regions (start, end, label in seconds at ``sample_rate``) of
    the ``.npy``/``.csv`` time series of a folder instead, saved to ``regions.csv``.

    ``network`` proposes labels to accept (as they are, or edited), or reject on the page,
    least confident first: a classifier a class for each unlabelled image, an
    :class:`~deeptoolbox.vision.ObjectDetector` the boxes scoring ``threshold`` or more for
    each image without boxes (confidence: its lowest box score), a segmentation network a
    label map for each image without one (confidence: the mean top-class probability of its
    pixels); the kind comes from the network, or ``task`` ("classify", "detect",
    "segment") when it cannot tell. ``issues`` (from
    :func:`deeptoolbox.quality.find_label_issues` on this folder's files) lists the likely
    mislabelled images with their suggested class, for review the same way.

    Example:
        >>> import tempfile
        >>> from deeptoolbox.datasets import digits, write_image_folder
        >>> images, labels = digits()
        >>> folder = write_image_folder(tempfile.mkdtemp(), images[:4], labels[:4])
        >>> handle = labeler(folder, open_browser=False)
        >>> handle.labeler.classes
        ['0', '1', '2', '3']
        >>> _ = handle.close()
    """
    from deeptoolbox.apps._labeler import LabelSession

    if signals:  # region labels on the time series of a folder (Signal Labeler)
        from deeptoolbox.apps._signal_labels import SignalRegions

        regions = SignalRegions(os.fspath(data), classes=classes, sample_rate=sample_rate)
        return start_app(None, root=root if root is not None else regions.folder, port=port,
                         open_browser=open_browser, page="labeler", signals=regions)  # fmt: skip

    label_file = "labels.csv"
    if getattr(data, "label_file", None) is not None:  # an ImageDatastore with a label CSV
        if tuple(data.label_columns) != ("file", "label"):
            raise OptionError(f"apps.labeler: the Labeler writes the columns ('file', 'label'); "
                              f"the datastore's label file '{data.label_file}' uses "
                              f"{tuple(data.label_columns)}.")  # fmt: skip
        folder, label_file, labels = data.label_folder, data.label_file, "csv"
        if classes is None:
            classes = [str(c) for c in data.classes]
    elif hasattr(data, "files") and not isinstance(data, str | os.PathLike):
        files = list(data.files)
        if not files:
            raise OptionError("apps.labeler: the datastore has no files.")
        folder = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
        if getattr(data, "classes", None) and classes is None:
            classes = [str(c) for c in data.classes]
        folder = os.path.dirname(folder) if labels != "csv" and classes and (
            os.path.basename(folder) in classes) else folder  # fmt: skip
    else:
        folder = os.fspath(data)
    session = LabelSession(folder, classes=classes, labels=labels, label_file=label_file)
    if network is not None:
        from deeptoolbox.apps._label_proposals import propose

        propose(session, network, threshold=threshold, task=task)
    if issues is not None:
        session.review(issues)
    handle = start_app(None, root=root if root is not None else session.folder, port=port,
                       open_browser=open_browser, page="labeler", labeler=session)  # fmt: skip
    return handle


def label_command(args: Any) -> int:
    """``deeptoolbox label PATH``: serve the Labeler in the foreground until Ctrl-C."""
    if not 0 <= args.port <= 65535:
        raise OptionError(f"label: --port must be 0 to 65535. Received: {args.port}.")
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    net = None
    if args.network:
        from deeptoolbox.apps._label_proposals import open_network_file

        net = open_network_file(Path(args.network))
    elif args.task is not None:
        raise OptionError(f"label: --task {args.task} says what --network proposes; give "
                          "--network FILE too.")  # fmt: skip
    handle = labeler(args.path, classes=classes, labels=args.labels, root=args.root,
                     port=args.port, open_browser=not args.no_browser, network=net,
                     signals=args.signals, sample_rate=args.sample_rate,
                     threshold=args.threshold, task=args.task)  # fmt: skip
    print(f"deeptoolbox label: {handle.url}#labeler", flush=True)
    if handle.labeler is not None:
        print(f"  images: {handle.labeler.folder} ({handle.labeler.mode})", flush=True)
        if handle.labeler.proposal_status:
            print(f"  {handle.labeler.proposal_status}", flush=True)
    else:
        print(f"  signals: {handle.signal_labeler.folder}", flush=True)
    try:
        while handle._thread.is_alive():
            handle._thread.join(0.5)
    except KeyboardInterrupt:
        handle.close()
    return 0


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
