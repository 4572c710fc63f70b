"""create_app(): the inference server as a FastAPI app, for ``deeptoolbox serve`` or for
mounting in an existing ASGI application.

Endpoints: ``POST /v1/predict``, ``POST /v1/classify``, ``GET /v1/metadata``, ``GET /health``,
``GET /ready``, ``GET /metrics``; OpenAPI at ``/openapi.json`` and ``/docs``. Requests are
checked before the model runs (:mod:`._server_inputs`), grouped into batches
(:mod:`._batching`), and answered one by one.
"""

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deeptoolbox._version import __version__
from deeptoolbox.deploy._batching import MicroBatcher
from deeptoolbox.deploy._server_images import DEFAULT_MAX_PIXELS, images_supported, preprocess_image
from deeptoolbox.deploy._server_inputs import encode_array, parse_json, request_inputs
from deeptoolbox.deploy._server_metrics import RequestMetrics, ServerMetrics
from deeptoolbox.deploy._server_model import BACKENDS, ServedModel, load_served_model
from deeptoolbox.deploy._server_schema import classify_openapi, predict_openapi
from deeptoolbox.deploy._web_guard import ApiKeyCheck, BodySizeLimit, error_body
from deeptoolbox.errors import MissingDependencyError, OptionError, RequestError, ServerClosedError

log = logging.getLogger("deeptoolbox.serve")
PROTECTED_PREFIXES = ("/v1/", "/metrics")


def _positive(name: str, value: Any, kind: type = int) -> None:
    number = int | float if kind is float else int
    if isinstance(value, bool) or not isinstance(value, number) or value <= 0:
        raise OptionError(f"ServerOptions: `{name}` must be a positive {kind.__name__}. "
                          f"Received: {name}={value!r}.")  # fmt: skip


@dataclass(frozen=True)
class ServerOptions:
    """Settings of the inference server, checked when made.

    Args:
        backend: ``"torch"`` (the network itself) or ``"onnxruntime"``.
        device: for the torch backend: ``"auto"`` (the GPU when there is one), ``"cpu"``...
        max_batch_size: most observations run together (1 turns micro-batching off).
        max_wait_ms: longest a request waits for others to share its batch.
        max_request_bytes: largest request body (default 4 MiB); larger ones get 413.
        max_images: most image files in one ``/v1/classify`` request.
        max_image_pixels: largest image (width x height) decoded.
        api_key: when set, ``/v1/*`` and ``/metrics`` need ``Authorization: Bearer KEY`` or
            ``X-API-Key: KEY`` (``/health`` and ``/ready`` stay open for probes).
        cors_origins: browser origins allowed to call the server (none by default).
        model_version: reported by ``/v1/metadata`` and every answer.
        warm_up: run the model once before serving.

    Example:
        >>> ServerOptions(max_batch_size=16).max_wait_ms
        5.0
        >>> try:
        ...     ServerOptions(backend="tensorrt")
        ... except OptionError as err:
        ...     "backend" in str(err)
        True
    """

    backend: str = "torch"
    device: str = "auto"
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_request_bytes: int = 4 * 2**20
    max_images: int = 64
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    api_key: str | None = None
    cors_origins: Sequence[str] = field(default_factory=tuple)
    model_version: int = 1
    warm_up: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(f"ServerOptions: `backend` must be one of {', '.join(map(repr, BACKENDS))}. "
                              f"Received: backend={self.backend!r}.")  # fmt: skip
        for name in ("max_batch_size", "max_request_bytes", "max_images", "max_image_pixels",
                     "model_version"):  # fmt: skip
            _positive(name, getattr(self, name))
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
            raise OptionError(
                f"ServerOptions: `max_wait_ms` must be a number >= 0. Received: {wait!r}."
            )
        if self.api_key is not None and (
            not isinstance(self.api_key, str) or not self.api_key.strip()
        ):
            raise OptionError("ServerOptions: `api_key` must be a non-empty string or None.")
        if isinstance(self.cors_origins, str) or not all(
            isinstance(o, str) for o in self.cors_origins
        ):
            raise OptionError("ServerOptions: `cors_origins` must be a list of origins such as "
                              f"['https://app.example.com']. Received: {self.cors_origins!r}.")  # fmt: skip
        if not isinstance(self.warm_up, bool):
            raise OptionError(
                f"ServerOptions: `warm_up` must be True or False. Received: {self.warm_up!r}."
            )

    def describe(self) -> dict[str, Any]:
        """The settings a client may want to know (no API key)."""
        return {"backend": self.backend, "max_batch_size": self.max_batch_size,
                "max_wait_ms": self.max_wait_ms, "max_request_bytes": self.max_request_bytes,
                "max_images": self.max_images, "api_key_required": self.api_key is not None}  # fmt: skip


def _require_fastapi():
    try:
        import fastapi
    except ImportError as err:
        raise MissingDependencyError(
            "deeptoolbox.deploy.create_app needs FastAPI, uvicorn and prometheus-client: "
            'pip install "deeptoolbox[serve]".'
        ) from err
    return fastapi


def create_app(model: Any, options: ServerOptions | None = None, **settings: Any):
    """The inference server for ``model`` as a FastAPI app.

    Args:
        model: a :class:`~deeptoolbox.Network`, a saved network (folder or ``.zip``), a model
            file (``.onnx``, ``.pt``, ``.pt2``, ``.keras``), or a deployment folder written by
            :func:`deeptoolbox.deploy.export` (``folder=True``, or a Triton model folder).
        options: a :class:`ServerOptions`; or give its fields as keywords.

    Returns:
        A FastAPI app (``app.state.model`` is the loaded :class:`ServedModel`); run it with
        ``uvicorn.run(app)``, mount it in another app, or test it with ``httpx``.

    Example:
        >>> import httpx, asyncio
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()], classes=["a", "b"])
        >>> app = create_app(net, max_batch_size=8)
        >>> async def ask():
        ...     async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
        ...                                  base_url="http://test") as client:
        ...         answer = await client.post("/v1/classify", json={"inputs": [[0.5, -1.0]]})
        ...         return answer.status_code, answer.json()["labels"][0] in ("a", "b")
        >>> asyncio.run(ask())
        (200, True)
    """
    fastapi = _require_fastapi()
    if options is not None and settings:
        raise OptionError("create_app: give `options` or keyword settings, not both.")
    options = options or ServerOptions(**settings)
    served = load_served_model(model, backend=options.backend, device=options.device,
                               version=options.model_version)  # fmt: skip
    if options.warm_up:
        served.warm_up()
    metrics = ServerMetrics()
    batcher = MicroBatcher(served.run, max_batch_size=options.max_batch_size,
                           max_wait_ms=options.max_wait_ms, on_batch=metrics.observe_batch)  # fmt: skip
    state = _State(served, options, batcher, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        state.draining = True  # uvicorn has let in-flight requests finish by now
        await batcher.close()

    app = fastapi.FastAPI(
        title=f"deeptoolbox inference server: {served.name}", version=__version__,
        description="Predictions and classes from a deeptoolbox network.", lifespan=lifespan,
    )  # fmt: skip
    app.state.model = served
    app.state.options = options
    _add_routes(app, state)
    _add_middleware(app, options, metrics)
    return app


@dataclass
class _State:
    served: ServedModel
    options: ServerOptions
    batcher: MicroBatcher
    metrics: ServerMetrics
    draining: bool = False


def _add_middleware(app, options: ServerOptions, metrics: ServerMetrics) -> None:
    # added innermost first: metrics -> CORS -> API key -> size limit -> the routes
    app.add_middleware(BodySizeLimit, max_bytes=options.max_request_bytes)
    app.add_middleware(ApiKeyCheck, api_key=options.api_key,
                       protected=lambda path: path.startswith(PROTECTED_PREFIXES))  # fmt: skip
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins),
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])  # fmt: skip
    app.add_middleware(RequestMetrics, metrics=metrics)


def _json_error(status: int, body: dict, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse(body, status_code=status, headers=headers)


def _add_routes(app, state: _State) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response

    served = state.served
    images = served.image_preprocessing is not None and images_supported()

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, err: RequestError):
        return _json_error(err.status, err.body())

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception):
        log.exception("deeptoolbox serve: request to %s failed", request.url.path)
        return _json_error(
            500, error_body("server", f"The model failed: {type(err).__name__}: {err}")
        )

    @app.get("/health", summary="Liveness: the process answers")
    async def health():
        return {"status": "ok"}

    @app.get("/ready", summary="Readiness: model loaded, warmed up, not shutting down",
             responses={503: {"description": "shutting down"}})  # fmt: skip
    async def ready():
        if state.draining or state.batcher.closed:
            return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
        return {"ready": True, "model": served.name}

    @app.get("/v1/metadata", summary="Inputs, sizes, classes, normalization, model version")
    async def metadata():
        return {**served.metadata, "backend": served.backend, "server": state.options.describe()}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        body, content_type = state.metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/v1/predict", summary="Model outputs for a batch of inputs",
              openapi_extra=predict_openapi(served.inputs))  # fmt: skip
    async def predict(request: Request):
        arrays = request_inputs(parse_json(await _json_body(request)), served.inputs)
        outputs = await _run(state, arrays)
        return _predict_answer(served, outputs)

    @app.post("/v1/classify", summary="Class labels and scores (arrays, or image files)",
              openapi_extra=classify_openapi(served.inputs, images))  # fmt: skip
    async def classify(request: Request):
        if len(served.output_names) != 1:
            raise RequestError(422, "model", "This model has several outputs; classify needs one. "
                               "Use /v1/predict.", received=served.output_names, expected="one output")  # fmt: skip
        if _content_type(request) == "multipart/form-data":
            arrays = await _image_inputs(request, state, images)
        else:
            arrays = request_inputs(parse_json(await _json_body(request)), served.inputs)
        outputs = await _run(state, arrays)
        return _classify_answer(served, outputs[0])


def _content_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json_body(request) -> bytes:
    kind = _content_type(request)
    if kind not in ("application/json", ""):
        raise RequestError(415, "Content-Type", "Send the inputs as JSON.", received=kind,
                           expected="application/json (or multipart/form-data with image "
                           "files for /v1/classify)")  # fmt: skip
    return await request.body()


async def _run(state: _State, arrays: list[np.ndarray]) -> list[np.ndarray]:
    if state.draining:
        raise RequestError(
            503, "server", "The server is shutting down.", expected="retry on another replica"
        )
    try:
        return await state.batcher.submit(arrays)
    except ServerClosedError as err:
        raise RequestError(503, "server", "The server is shutting down.") from err
    except Exception as err:  # the model failed on valid input: a 500 answer, the server lives on
        log.exception("deeptoolbox serve: the model failed on a batch")
        message = f"The model failed: {type(err).__name__}: {err}"
        raise RequestError(500, "server", message) from err


async def _image_inputs(request, state: _State, images: bool) -> list[np.ndarray]:
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    served = state.served
    if not images:
        what = served.inputs[0].describe() if len(served.inputs) == 1 else "several inputs"
        reason = (
            "" if served.image_preprocessing is None else " (install deeptoolbox[data] for images)"
        )
        raise RequestError(415, "images", f"This model does not take image files{reason}.",
                           received="multipart/form-data", expected=f"JSON inputs {what}")  # fmt: skip
    limit = state.options.max_images
    try:
        form = await request.form(max_files=limit, max_fields=limit + 8)
    except HTTPException as err:
        raise RequestError(
            400,
            "body",
            f"The multipart body cannot be read: {err.detail}",
            expected=f"at most {limit} files in the field 'images'",
        ) from err
    except Exception as err:  # malformed multipart bodies raise several types
        raise RequestError(400, "body", f"The multipart body cannot be read: {err}") from err
    try:
        unknown = sorted({key for key in form if key != "images"})
        if unknown:
            raise RequestError(
                422, unknown[0], "Unknown form field.", received=unknown, expected=["images"]
            )
        files = form.getlist("images")
        if not files or not all(isinstance(f, UploadFile) for f in files):
            raise RequestError(422, "images", "Send one or more image files in the field 'images'.",
                               received=f"{len(files)} files", expected="image files")  # fmt: skip
        arrays = []
        for index, upload in enumerate(files):
            data = await upload.read()
            arrays.append(preprocess_image(data, upload.filename or "", f"images[{index}]",
                                           served.image_preprocessing, state.options.max_image_pixels))  # fmt: skip
    finally:
        await form.close()
    return [np.stack(arrays)]


def _predict_answer(served: ServedModel, outputs: list[np.ndarray]) -> dict[str, Any]:
    warnings = []
    encoded = {}
    for name, output in zip(served.output_names, outputs, strict=False):
        encoded[name], bad = encode_array(output)
        if bad:
            warnings.append(
                f"output '{name}' has {bad} non-finite values (NaN or Inf), sent as null"
            )
    answer: dict[str, Any] = {
        "model": served.name,
        "model_version": served.metadata.get("model_version"),
        "outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded,
    }
    if warnings:
        answer["warnings"] = warnings
    return answer


def _softmax(scores: np.ndarray, axis: int) -> np.ndarray:
    shifted = scores - scores.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def _classify_answer(served: ServedModel, scores: np.ndarray) -> dict[str, Any]:
    scores = scores.astype(np.float64)
    axis = -1 if scores.ndim <= 3 else 1
    if not served.ends_in_softmax and np.isfinite(scores).all():
        scores = _softmax(scores, axis)
    indices = np.argmax(np.nan_to_num(scores, nan=-np.inf), axis=axis)
    classes = served.classes
    if classes is not None and scores.shape[axis] == len(classes):
        labels = np.asarray(classes, dtype=object)[indices].tolist()
    else:
        labels = indices.tolist()
    encoded, bad = encode_array(scores)
    answer = {"model": served.name, "model_version": served.metadata.get("model_version"),
              "labels": labels, "scores": encoded, "classes": classes}  # fmt: skip
    if bad:
        answer["warnings"] = [f"the scores have {bad} non-finite values (NaN or Inf), sent as null"]
    return answer
