"""``deeptoolbox serve MODEL``: the inference server on uvicorn.

Only argparse is imported here, so ``deeptoolbox --help`` stays fast; FastAPI, uvicorn and the
model load when the command runs. With ``--workers N`` uvicorn starts N processes, each
loading the model itself (from the settings this process puts in an environment variable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

CONFIG_VARIABLE = "DEEPTOOLBOX_SERVE_CONFIG"


def add_serve_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to the toolbox's argparse subparsers."""
    serve = commands.add_parser(
        "serve", help="serve a model over HTTP (predict, classify, metadata, health, metrics)"
    )
    serve.add_argument("model", help="saved network (folder/.zip), .onnx, .pt, .pt2, .keras, or "
                       "a deployment folder from deeptoolbox.deploy.export")  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="processes (default: %(default)s)")
    serve.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                       help="run the model in torch or onnxruntime (default: %(default)s)")  # fmt: skip
    serve.add_argument("--device", default="auto", help="torch device (default: %(default)s)")
    serve.add_argument("--api-key-env", metavar="VAR", default=None,
                       help="require the API key held by this environment variable")  # fmt: skip
    serve.add_argument("--max-batch-size", type=int, default=32,
                       help="most observations per model run; 1: no batching (default: %(default)s)")  # fmt: skip
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="longest wait for a batch to fill (default: %(default)s)")  # fmt: skip
    serve.add_argument("--max-request-mb", type=float, default=4.0,
                       help="largest request body in MiB (default: %(default)s)")  # fmt: skip
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from this origin (repeatable; none by default)")  # fmt: skip
    serve.add_argument("--model-version", type=int, default=1, help="reported model version")
    serve.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds in-flight requests get to finish on shutdown (default: %(default)s)")  # fmt: skip
    return serve


def _api_key(variable: str | None) -> str | None:
    from deeptoolbox.errors import OptionError

    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key.strip():
        raise OptionError(
            f"serve: --api-key-env {variable}: the environment variable {variable} is not set or "
            f"empty. Set it to the key clients must send (export {variable}=...)."
        )
    return key


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "backend": args.backend,
        "device": args.device,
        "max_batch_size": args.max_batch_size,
        "max_wait_ms": args.max_wait_ms,
        "max_request_bytes": max(1, int(args.max_request_mb * 2**20)),
        "cors_origins": list(args.cors_origin),
        "model_version": args.model_version,
    }


def _check(args: argparse.Namespace) -> None:
    from deeptoolbox.errors import OptionError

    if not 0 <= args.port <= 65535:
        raise OptionError(f"serve: --port must be 0 to 65535. Received: {args.port}.")
    if args.workers < 1:
        raise OptionError(f"serve: --workers must be at least 1. Received: {args.workers}.")
    if args.max_request_mb <= 0:
        raise OptionError(
            f"serve: --max-request-mb must be positive. Received: {args.max_request_mb}."
        )


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until interrupted (Ctrl-C or SIGTERM: in-flight requests finish)."""
    from deeptoolbox.deploy._server_app import ServerOptions, create_app

    _check(args)
    key = _api_key(args.api_key_env)
    settings = _settings(args)
    options = ServerOptions(**settings, api_key=key)  # checks every value before loading
    uvicorn = _uvicorn()
    if args.host not in ("127.0.0.1", "localhost", "::1") and key is None:
        print(f"warning: serving on {args.host} without an API key; anyone who reaches this "
              "address can use the model (see --api-key-env).", file=sys.stderr)  # fmt: skip
    common = {"host": args.host, "port": args.port, "log_level": "info",
              "timeout_graceful_shutdown": args.graceful_timeout}  # fmt: skip
    if args.workers == 1:
        app = create_app(args.model, options)
        _announce(args, app.state.model)
        uvicorn.run(app, **common)
        return 0
    os.environ[CONFIG_VARIABLE] = json.dumps(
        {"model": str(args.model), "settings": settings, "api_key_env": args.api_key_env}
    )
    create_app(args.model, options)  # fail here, once, on a bad model rather than in N workers
    print(f"deeptoolbox serve: starting {args.workers} workers on http://{args.host}:{args.port}")
    uvicorn.run("deeptoolbox._serve_cli:app_from_environment", factory=True,
                workers=args.workers, **common)  # fmt: skip
    return 0


def _uvicorn():
    try:
        import uvicorn
    except ImportError as err:
        from deeptoolbox.errors import MissingDependencyError

        raise MissingDependencyError(
            'deeptoolbox serve needs uvicorn and FastAPI: pip install "deeptoolbox[serve]".'
        ) from err
    return uvicorn


def _announce(args: argparse.Namespace, served: Any) -> None:
    inputs = ", ".join(f"{s.name} {s.describe()}" for s in served.inputs)
    print(f"deeptoolbox serve: model '{served.name}' ({served.backend}; inputs {inputs}) on "
          f"http://{args.host}:{args.port} - API docs at /docs", flush=True)  # fmt: skip


def app_from_environment():
    """The app of one uvicorn worker process, from the settings the parent process left."""
    from deeptoolbox.deploy._server_app import ServerOptions, create_app

    config = json.loads(os.environ[CONFIG_VARIABLE])
    options = ServerOptions(**config["settings"], api_key=_api_key(config["api_key_env"]))
    return create_app(config["model"], options)
