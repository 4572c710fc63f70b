"""The deeptoolbox exception hierarchy: every exception class of the toolbox is defined here.

Every error the toolbox raises on purpose derives from :class:`DeepToolboxError`, and also from
the built-in exception a plain-Python caller would expect (``ValueError``, ``OSError``...), so
existing ``except`` clauses keep working. Subpackages re-export the errors they raise
(``deeptoolbox.hub.WeightsError`` is ``deeptoolbox.errors.WeightsError``).

A message names what is involved (layer, option, file), what was found, what is allowed, and a
hint where one helps. :func:`describe` builds messages in that shape.

The last section holds internal signals: exceptions used for control flow inside one module,
caught there, that never reach users (not in ``__all__``).

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
    "describe",
    # options, data, networks, files
    "OptionError",
    "DataError",
    "NetworkError",
    "LayerNotFoundError",
    "SizeMismatchError",
    "NotInitializedError",
    "InputSizeError",
    "DataFormError",
    "UnregisteredLayerError",
    "NetworkFileError",
    "PathOutsideRootError",
    "FileWriteError",
    "ResourceLimitError",
    "MissingDependencyError",
    # training, import / export
    "TrainingError",
    "ModelImportError",
    "ModelExportError",
    # hub
    "UnknownModelError",
    "WeightsError",
    "ChecksumError",
    # explain, robustness, compress
    "TargetError",
    "LayerChoiceError",
    "UnsupportedLayerError",
    "VnnlibError",
    "CompressionError",
    # deploy, experiments
    "CodegenError",
    "CompilerError",
    "RequestError",
    "ServerClosedError",
    "ExperimentError",
    "StoreError",
    # simulate
    "DiagramError",
    "SimulationError",
]


class DeepToolboxError(Exception):
    """Base class of every error deeptoolbox raises on purpose: one ``except`` for all of them.

    Example:
        >>> from deeptoolbox.network import Network
        >>> try:
        ...     Network([])
        ... except DeepToolboxError as err:
        ...     print(f"{type(err).__name__}: {err}")
        NetworkError: Expected at least one layer; received an empty list.
    """


def describe(what: str, found: object, expected: str, hint: str | None = None) -> str:
    """Build an error message in the toolbox's shape: what, value found, what is allowed, hint.

    Example:
        >>> describe("Dense 'fc': `units`", 0, "a positive int", "Example: Dense(10).")
        "Dense 'fc': `units` must be a positive int. Received: 0. Example: Dense(10)."
    """
    message = f"{what} must be {expected}. Received: {found!r}."
    return f"{message} {hint}" if hint else message


# --- options, data, networks, files ----------------------------------------------------------


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


class NetworkError(DeepToolboxError, ValueError):
    """The layer graph is wrong: duplicate names, bad connections, cycles, missing inputs.

    Example:
        >>> from deeptoolbox.layers import Dense, FeatureInput
        >>> from deeptoolbox.network import Network
        >>> try:
        ...     Network([FeatureInput(2, name="a"), Dense(2, name="a")])
        ... except NetworkError as err:
        ...     print(str(err)[:43])
        A layer named 'a' already exists in network
    """


class LayerNotFoundError(NetworkError, KeyError):
    """A layer or port name does not exist in the network (also a ``KeyError``).

    Example:
        >>> from deeptoolbox.layers import Dense, FeatureInput
        >>> from deeptoolbox.network import Network
        >>> try:
        ...     Network([FeatureInput(2), Dense(2, name="fc")]).layer("fc2")
        ... except KeyError as err:
        ...     print(str(err).split(" Layers:")[0])
        Network 'network' has no layer named 'fc2'. Did you mean 'fc'?
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SizeMismatchError(NetworkError):
    """Sizes flowing into a layer are not what the layer can take; the message names both
    layers and both sizes.

    Example:
        >>> try:
        ...     raise SizeMismatchError("Addition 'add': inputs of sizes (4,) and (3,) differ.")
        ... except NetworkError as err:
        ...     print(err)
        Addition 'add': inputs of sizes (4,) and (3,) differ.
    """


class NotInitializedError(NetworkError, RuntimeError):
    """The network cannot run until its graph is complete and its sizes resolve.

    Example:
        >>> try:
        ...     raise NotInitializedError("Network 'net' has no input layer: it cannot run.")
        ... except RuntimeError as err:
        ...     print(err)
        Network 'net' has no input layer: it cannot run.
    """


class InputSizeError(DeepToolboxError, ValueError):
    """Data given to a network does not match what its input layer declares.

    Example:
        >>> import torch
        >>> from deeptoolbox.layers import Dense, FeatureInput
        >>> from deeptoolbox.network import Network
        >>> try:
        ...     Network([FeatureInput(3), Dense(2)])(torch.zeros(4, 5))
        ... except InputSizeError as err:
        ...     "C = 3" in str(err) and "(4, 5)" in str(err)
        True
    """


class DataFormError(OptionError, InputSizeError):
    """Data is of a form no toolbox function reads (also an OptionError and an InputSizeError).

    Every function that takes data (train, predict, evaluate, the explainers, attacks and
    bounds) accepts the same forms; the message names the argument, what was found and the
    forms allowed.

    Example:
        >>> issubclass(DataFormError, OptionError) and issubclass(DataFormError, InputSizeError)
        True
    """


class UnregisteredLayerError(NetworkError, TypeError):
    """A layer type cannot be saved or loaded because it is not registered.

    Example:
        >>> try:
        ...     raise UnregisteredLayerError("Layer type 'MyBlock' is not registered.")
        ... except TypeError as err:
        ...     print(err)
        Layer type 'MyBlock' is not registered.
    """


class NetworkFileError(DeepToolboxError, OSError):
    """A saved network file or folder is missing, corrupted, truncated or of another format.

    Example:
        >>> import deeptoolbox
        >>> try:
        ...     deeptoolbox.load("no-such-network.zip")
        ... except OSError as err:
        ...     print(err)
        No saved network at no-such-network.zip: the path does not exist.
    """


class ResourceLimitError(DeepToolboxError, ValueError):
    """A file asks a reader for more than its limits allow: a zip that expands too much, a
    JSON document nested too deep, a tensor or a graph larger than the file can hold.

    The limits (:class:`deeptoolbox.ReadLimits`) guard memory and time when reading files from
    untrusted sources; the message names the file, the limit, the value found and how to raise
    the limit (``limits=ReadLimits(...)`` on the reader) for a file that you trust.

    Example:
        >>> from deeptoolbox._limits import ReadLimits
        >>> try:
        ...     ReadLimits(max_json_depth=2).load_json(b'[[[1]]]', "net.json")
        ... except ResourceLimitError as err:
        ...     print(err.limit, err.value)
        max_json_depth 3
    """

    def __init__(self, message: str, *, limit: str, value: object) -> None:
        super().__init__(message)
        self.limit, self.value = limit, value


class PathOutsideRootError(NetworkFileError, PermissionError):
    """A browser app was asked to read or write a path outside the folder it was started with
    (``deeptoolbox app --root DIR``): a ``../`` path, an absolute path elsewhere, a link out.

    Example:
        >>> from deeptoolbox.apps._files import confined
        >>> from pathlib import Path
        >>> try:
        ...     confined(Path("/srv/models"), "../etc/passwd")
        ... except PermissionError as err:
        ...     print(type(err).__name__)
        PathOutsideRootError
    """


class FileWriteError(DeepToolboxError, OSError):
    """Writing a file or folder failed midway (disk full, I/O error, file size limit...).

    Every writer of the toolbox writes through a temporary entry renamed into place, so when
    this is raised the path holds what it held before (or nothing), and no temporary entry is
    left behind. ``errno`` is the operating system's error number and ``filename`` the path.

    Example:
        >>> import errno
        >>> err = FileWriteError("Could not write 'net.zip': No space left on device.")
        >>> err.errno = errno.ENOSPC
        >>> isinstance(err, OSError), err.errno == errno.ENOSPC
        (True, True)
    """

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror: filename"
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(DeepToolboxError, ImportError):
    """An optional package a feature needs is not installed (or too old); the message names
    the package and the extra that installs it.

    Example:
        >>> try:
        ...     raise MissingDependencyError('Install it with: pip install "deeptoolbox[hub]"')
        ... except ImportError as err:
        ...     print(err)
        Install it with: pip install "deeptoolbox[hub]"
    """


# --- training, import / export ---------------------------------------------------------------


class TrainingError(DeepToolboxError, RuntimeError):
    """Training had to stop: the loss became NaN or Inf, or a step failed.

    ``err.result`` holds the :class:`~deeptoolbox.training.TrainingResult` with the last good
    network and the history up to the failure (None when training never started).

    Example:
        >>> try:
        ...     raise TrainingError("Loss is NaN at iteration 12.", result=None)
        ... except RuntimeError as err:
        ...     print(err, err.result)
        Loss is NaN at iteration 12. None
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


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


class ModelExportError(DeepToolboxError, RuntimeError):
    """A network cannot be written to another format, or the written file disagrees with it.

    Example:
        >>> try:
        ...     raise ModelExportError("net.onnx: onnxruntime differs by 0.3 (tolerance 1e-4).")
        ... except RuntimeError as err:
        ...     print(err)
        net.onnx: onnxruntime differs by 0.3 (tolerance 1e-4).
    """


# --- hub -------------------------------------------------------------------------------------


class UnknownModelError(OptionError, KeyError):
    """A model name is not in the registry (nor a ``timm:`` / ``hf:`` name).

    Example:
        >>> from deeptoolbox import hub
        >>> try:
        ...     hub.model_info("resnet_nope")
        ... except KeyError as err:
        ...     print(str(err)[:50])
        pretrained: unknown model 'resnet_nope'. Did you m
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(DeepToolboxError, OSError):
    """Weights cannot be found, fetched or loaded: a file missing from the cache while offline,
    a failed download, or a file that does not fit the architecture.

    Example:
        >>> try:
        ...     raise WeightsError("resnet18: weights not in the cache and downloads are off.")
        ... except OSError as err:
        ...     print(err)
        resnet18: weights not in the cache and downloads are off.
    """


class ChecksumError(WeightsError):
    """A downloaded weights file does not have the SHA-256 digest its source publishes.

    Example:
        >>> try:
        ...     raise ChecksumError("resnet18.pth: SHA-256 starts with 0a1b, expected 9f8e.")
        ... except WeightsError as err:
        ...     print(err)
        resnet18.pth: SHA-256 starts with 0a1b, expected 9f8e.
    """


# --- explain, robustness, compress -----------------------------------------------------------


class TargetError(OptionError):
    """The ``target`` given to an explainer names no output of the network.

    Example:
        >>> try:
        ...     raise TargetError("gradcam: target 'cat' is not a class. Classes: ['a', 'b'].")
        ... except ValueError as err:
        ...     print(err)
        gradcam: target 'cat' is not a class. Classes: ['a', 'b'].
    """


class LayerChoiceError(OptionError):
    """The ``layer`` given to an explainer cannot be used (e.g. it has no spatial extent).

    Example:
        >>> try:
        ...     raise LayerChoiceError("gradcam: layer 'fc' has no spatial extent.")
        ... except OptionError as err:
        ...     print(err)
        gradcam: layer 'fc' has no spatial extent.
    """


class UnsupportedLayerError(NetworkError, TypeError):
    """A layer cannot be handled by the bound propagation (output bounds, verification).

    Example:
        >>> try:
        ...     raise UnsupportedLayerError("verify_robustness: layer 'lstm' (LSTM) is unsupported.")
        ... except NetworkError as err:
        ...     print(err)
        verify_robustness: layer 'lstm' (LSTM) is unsupported.
    """


class VnnlibError(DeepToolboxError, ValueError):
    """A VNN-LIB file cannot be read: syntax error, unknown variable or unsupported construct.

    Example:
        >>> try:
        ...     raise VnnlibError("prop.vnnlib, line 3: unknown variable 'Z_0'.")
        ... except ValueError as err:
        ...     print(err)
        prop.vnnlib, line 3: unknown variable 'Z_0'.
    """


class CompressionError(NetworkError):
    """A network (or a layer of it) cannot be compressed as asked.

    The message names the layers involved and why: a layer no backend can quantize, channels
    that cannot be pruned (they reach an output, a normalization over channels...), a layer
    that cannot be projected.

    Example:
        >>> try:
        ...     raise CompressionError("prune: layer 'fc' feeds an output; it cannot lose units.")
        ... except NetworkError as err:
        ...     print(err)
        prune: layer 'fc' feeds an output; it cannot lose units.
    """


# --- deploy, experiments ---------------------------------------------------------------------


class CodegenError(DeepToolboxError, ValueError):
    """A network cannot be turned into C: unsupported layers, missing statistics or ranges.

    Raised by :func:`deeptoolbox.deploy.generate_c` and its helpers; the message lists every
    layer involved, what was found and what is supported.

    Example:
        >>> try:
        ...     raise CodegenError("generate_c: layer 'attn' (SelfAttention) is not supported.")
        ... except ValueError as err:
        ...     print(err)
        generate_c: layer 'attn' (SelfAttention) is not supported.
    """


class CompilerError(DeepToolboxError, RuntimeError):
    """Generated C code could not be compiled: no C compiler was found, or it failed.

    Example:
        >>> try:
        ...     raise CompilerError("No C compiler found: install gcc or pass compiler=.")
        ... except RuntimeError as err:
        ...     print(err)
        No C compiler found: install gcc or pass compiler=.
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
        >>> try:
        ...     raise ServerClosedError("The server is shutting down; retry on another replica.")
        ... except RuntimeError as err:
        ...     print(err)
        The server is shutting down; retry on another replica.
    """


class ExperimentError(DeepToolboxError, RuntimeError):
    """An experiment cannot go on: a metric is never reported, the store holds another
    definition under this name, a trial or run that does not exist was asked for.

    Example:
        >>> try:
        ...     raise ExperimentError("experiment 'sweep': no trial number 7 (trials: 0 to 5).")
        ... except RuntimeError as err:
        ...     print(err)
        experiment 'sweep': no trial number 7 (trials: 0 to 5).
    """


class StoreError(DeepToolboxError, OSError):
    """The experiment store cannot be opened: a folder that does not exist, a bad database
    URL, a database driver that is not installed.

    Example:
        >>> try:
        ...     raise StoreError("store 'runs/': the folder does not exist.")
        ... except OSError as err:
        ...     print(err)
        store 'runs/': the folder does not exist.
    """


# --- simulate --------------------------------------------------------------------------------


class DiagramError(DeepToolboxError, ValueError):
    """A block diagram is wrong: an unknown block or port, an unconnected input, a port fed
    twice, an algebraic loop (the message names the blocks in the loop).

    Example:
        >>> try:
        ...     raise DiagramError("Diagram: block 'plant' has no input port 'in3'.")
        ... except ValueError as err:
        ...     print(err)
        Diagram: block 'plant' has no input port 'in3'.
    """


class SimulationError(DeepToolboxError, RuntimeError):
    """A simulation cannot go on: a state became NaN or infinite (the message names the block
    and the time), a gradient was asked of a block that has none (an FMU), an FMU call failed.

    Example:
        >>> try:
        ...     raise SimulationError("simulate: the state of block 'plant' is not finite.")
        ... except RuntimeError as err:
        ...     print(err)
        simulate: the state of block 'plant' is not finite.
    """


# --- internal signals: raised and caught inside one module, never reach users ----------------


class NonFiniteLoss(Exception):
    """Raised by the training engine's ``flush`` when a loss read back is NaN or Inf; train()
    turns it into a :class:`TrainingError` carrying the rolled-back result."""

    def __init__(self, iteration: int, epoch: int, value: float) -> None:
        super().__init__(f"loss {value} at iteration {iteration}")
        self.iteration, self.epoch, self.value = iteration, epoch, value


class OutOfTime(Exception):
    """Raised inside the bound engine when the deadline has passed (the result says so)."""


class ConversionError(DeepToolboxError, ValueError):
    """Part of a traced graph has no layer form (caught by from_torch, which then wraps)."""


class ModeError(DeepToolboxError, ValueError):
    """The training and evaluation graphs of a module cannot be merged into one network
    (caught by from_torch, which then keeps the module whole)."""


class MetricMissing(ExperimentError):
    """The setup never reported the experiment's metric: every trial would fail the same way."""


class StopTraining(BaseException):
    """Raised inside train() when a built-in training trial of an experiment is asked to stop."""


class _LayerReached(Exception):
    """Raised by a forward hook once the layer of interest has run: the rest is not needed
    (activations, deep_dream)."""


class _ShortSample(Exception):
    """An ONNX layer failed on the short free-length samples; import tries longer ones."""


class _MatDamaged(Exception):
    """Where and how a .mat file's structure is broken (data._matfile; becomes DataError)."""


class _KerasUnsupported(Exception):
    """A Keras layer option the toolbox has no exact equivalent for (becomes ModelImportError)."""


class _TraceDisagrees(Exception):
    """The network traced from a module does not reproduce the module's outputs."""


class _ModeMismatch(Exception):
    """Two aligned calls of the training and evaluation graphs differ in more than a flag."""
