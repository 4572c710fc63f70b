"""The deeptoolbox exception hierarchy.

Every error the toolbox raises on purpose derives from :class:`DeepToolboxError`, and also from
the built-in exception a plain-Python caller would expect (``ValueError``, ``OSError``...), so
existing ``except`` clauses keep working.

A message names what is involved (layer, option, file), what was found, what is allowed, and a
hint where one helps. :func:`describe` builds messages in that shape.

Example:
    >>> from deeptoolbox.errors import OptionError
    >>> try:
    ...     raise OptionError("Dense: `units` must be a positive int. Received: units=0.")
    ... except ValueError as err:
    ...     print(type(err).__name__)
    OptionError
"""

from __future__ import annotations

__all__ = [
    "DeepToolboxError",
    "OptionError",
    "NetworkError",
    "LayerNotFoundError",
    "SizeMismatchError",
    "NotInitializedError",
    "InputSizeError",
    "UnregisteredLayerError",
    "NetworkFileError",
    "ModelImportError",
    "CodegenError",
    "CompilerError",
    "describe",
    "RequestError",
    "ServerClosedError",
]


class DeepToolboxError(Exception):
    """Base class of every error deeptoolbox raises on purpose.

    Example:
        >>> issubclass(NetworkError, DeepToolboxError)
        True
    """


class OptionError(DeepToolboxError, ValueError, TypeError):
    """An option or constructor argument has a value that is not allowed.

    Example:
        >>> from deeptoolbox.layers import Dense
        >>> try:
        ...     Dense(-1)
        ... except OptionError as err:
        ...     "units" in str(err)
        True
    """


class NetworkError(DeepToolboxError, ValueError):
    """The layer graph is wrong: duplicate names, bad connections, cycles, missing inputs.

    Example:
        >>> issubclass(NetworkError, ValueError)
        True
    """


class LayerNotFoundError(NetworkError, KeyError):
    """A layer or port name does not exist in the network.

    Example:
        >>> issubclass(LayerNotFoundError, KeyError)
        True
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SizeMismatchError(NetworkError):
    """Sizes flowing into a layer are not what the layer can take.

    Example:
        >>> issubclass(SizeMismatchError, NetworkError)
        True
    """


class NotInitializedError(NetworkError, RuntimeError):
    """The network cannot run until its graph is complete and its sizes resolve.

    Example:
        >>> issubclass(NotInitializedError, RuntimeError)
        True
    """


class InputSizeError(DeepToolboxError, ValueError):
    """Data given to a network does not match what its input layer declares.

    Example:
        >>> issubclass(InputSizeError, ValueError)
        True
    """


class UnregisteredLayerError(NetworkError, TypeError):
    """A layer type cannot be saved or loaded because it is not registered.

    Example:
        >>> issubclass(UnregisteredLayerError, TypeError)
        True
    """


class NetworkFileError(DeepToolboxError, OSError):
    """A saved network file or folder is missing, corrupted, truncated or of another format.

    Example:
        >>> issubclass(NetworkFileError, OSError)
        True
    """


class ModelImportError(DeepToolboxError, ValueError):
    """A model file from another framework cannot be imported (or exported) as a Network.

    Raised for truncated, corrupt or wrong-format files, unsupported format versions or
    opsets, and operators or layers the toolbox cannot map; the message names the file, the
    nodes or layers involved and what is supported.

    Example:
        >>> try:
        ...     raise ModelImportError("model.onnx: unsupported operators: NonZero (node 'nz')")
        ... except ValueError as err:
        ...     "NonZero" in str(err)
        True
    """


class DataError(DeepToolboxError, ValueError):
    """Data cannot be read or does not fit together: a corrupt or missing file, an empty folder,
    an unknown extension, inputs and targets of different lengths, a bad label list.

    Example:
        >>> from deeptoolbox.data import ArrayDatastore
        >>> try:
        ...     ArrayDatastore([[1.0], [2.0]], targets=["a"])
        ... except DataError as err:
        ...     "targets" in str(err)
        True
    """


def describe(what: str, found: object, expected: str, hint: str | None = None) -> str:
    """Build an error message in the toolbox's shape: what, value found, what is allowed, hint.

    Example:
        >>> describe("Dense 'fc': `units`", 0, "a positive int", "Example: Dense(10).")
        "Dense 'fc': `units` must be a positive int. Received: 0. Example: Dense(10)."
    """
    message = f"{what} must be {expected}. Received: {found!r}."
    return f"{message} {hint}" if hint else message


class TrainingError(DeepToolboxError, RuntimeError):
    """Training had to stop: the loss became NaN or Inf, or a step failed.

    ``err.result`` holds the :class:`~deeptoolbox.training.TrainingResult` with the last good
    network and the history up to the failure (None when training never started).

    Example:
        >>> issubclass(TrainingError, RuntimeError)
        True
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class CodegenError(DeepToolboxError, ValueError):
    """A network cannot be turned into C: unsupported layers, missing statistics or ranges.

    Raised by :func:`deeptoolbox.deploy.generate_c` and its helpers; the message lists every
    layer involved, what was found and what is supported.

    Example:
        >>> issubclass(CodegenError, ValueError)
        True
    """


class CompilerError(DeepToolboxError, RuntimeError):
    """Generated C code could not be compiled: no C compiler was found, or it failed.

    Example:
        >>> issubclass(CompilerError, RuntimeError)
        True
    """


class RequestError(DeepToolboxError, ValueError):
    """A request the inference server cannot answer, with its HTTP ``status`` (4xx for bad
    input; 500 / 503 when the model fails or the server stops) and a JSON body naming the
    field, what was received and what is expected.

    Example:
        >>> err = RequestError(422, "inputs", "Wrong size.", received=[2, 3], expected="(N, 4)")
        >>> err.status, err.body()["error"]["expected"]
        (422, '(N, 4)')
    """

    def __init__(self, status: int, field: str, message: str, received: object = None,
                 expected: object = None) -> None:  # fmt: skip
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message
        self.received = received
        self.expected = expected

    def body(self) -> dict:
        """The JSON answer: ``{"error": {"field", "message", "received", "expected"}}``."""
        error: dict = {"field": self.field, "message": self.message}
        if self.received is not None:
            error["received"] = self.received
        if self.expected is not None:
            error["expected"] = self.expected
        return {"error": error}


class ServerClosedError(DeepToolboxError, RuntimeError):
    """The inference server (its micro-batcher) is shutting down and takes no new requests.

    Example:
        >>> issubclass(ServerClosedError, RuntimeError)
        True
    """
