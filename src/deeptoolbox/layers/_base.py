"""The Layer base class, the layer registry and shared validation helpers.

A layer declares only hyperparameters in ``__init__``. Sizes it can infer (input channels,
features) arrive later through :meth:`Layer.build`, called by the network with the sizes of
the layer's inputs. Every layer states its output-size rule in :meth:`Layer.output_shape`,
which lets the network resolve sizes without running any data.

Sizes never include the batch dimension; a ``None`` entry is a free length (sequence time).
The rank tells the data kind (see DESIGN.md): 1 = features (C,), 2 = sequences (T, C),
3 = images (C, H, W), 4 = volumes (C, D, H, W).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from typing import Any, TypeVar

from torch import nn

from deeptoolbox.errors import OptionError, SizeMismatchError, UnregisteredLayerError

Shape = tuple[int | None, ...]
"""A size without the batch dimension; ``None`` marks a free length."""

_REGISTRY: dict[str, type[nn.Module]] = {}
_CONFIG_ATTR = "_deeptoolbox_config"

T = TypeVar("T", bound=type)


def _capture_init_arguments(cls: type) -> None:
    """Wrap ``cls.__init__`` so each instance records the arguments it was built with."""
    original = cls.__dict__.get("__init__")
    if original is None or getattr(original, "_captures_config", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        outermost = not hasattr(self, "_deeptoolbox_building")
        if outermost:
            object.__setattr__(self, "_deeptoolbox_building", True)
        try:
            original(self, *args, **kwargs)
        finally:
            if outermost:
                object.__delattr__(self, "_deeptoolbox_building")
        if outermost:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            config = {k: v for k, v in list(bound.arguments.items())[1:] if k != "name"}
            for key, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and key in config:
                    config.update(config.pop(key))
            config.pop("name", None)
            object.__setattr__(self, _CONFIG_ATTR, config)

    __init__._captures_config = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


class Layer(nn.Module):
    """Base class of every deeptoolbox layer: a ``torch.nn.Module`` with a size rule.

    Subclasses take hyperparameters in ``__init__`` (the values are recorded for saving),
    create parameters in :meth:`build` once input sizes are known, state their output size
    in :meth:`output_shape`, and compute in ``forward``. Layers with several inputs list
    their port names in ``input_names``.

    Example:
        >>> import torch
        >>> from deeptoolbox.layers import Dense
        >>> layer = Dense(4)
        >>> layer.output_shape([(3,)])
        (4,)
        >>> layer.build([(3,)])
        >>> layer(torch.zeros(2, 3)).shape
        torch.Size([2, 4])
    """

    input_names: tuple[str, ...] = ("in",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _capture_init_arguments(cls)

    def __init__(self, *, name: str | None = None) -> None:
        nn.Module.__init__(self)  # not the torch class a layer may also derive from
        self.name = name
        self.built_shapes: list[Shape] | None = None

    # -- the contract subclasses fill in -------------------------------------------------
    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        """Return the output size for the given input sizes; raise SizeMismatchError if unusable."""
        return input_shapes[0]

    def build(self, input_shapes: list[Shape]) -> None:
        """Create parameters for the given input sizes (default: nothing to create)."""
        self.output_shape(input_shapes)
        self.built_shapes = [tuple(s) for s in input_shapes]

    @property
    def is_identity(self) -> bool:
        """True when the layer passes its input through unchanged (networks skip it)."""
        return False

    def cannot_run(self) -> str | None:
        """Why the layer cannot run although its sizes resolve, or None (it can run).

        Placeholders that importers leave for layers they cannot convert say so here; the
        network reports it as an error (``analyze``, ``initialize``) until they are replaced.

        Example:
            >>> from deeptoolbox.layers import ReLU
            >>> ReLU().cannot_run() is None
            True
        """
        return None

    # -- configuration -------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments as a dict (JSON-safe for built-in layers).

        Example:
            >>> from deeptoolbox.layers import Dense
            >>> Dense(8, bias=False).get_config()["bias"]
            False
        """
        return dict(getattr(self, _CONFIG_ATTR, {}))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """Rebuild a layer from :meth:`get_config` output.

        Example:
            >>> from deeptoolbox.layers import Dense
            >>> Dense.from_config({"units": 8}).units
            8
        """
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})

    @property
    def is_built(self) -> bool:
        """True once :meth:`build` has run."""
        return self.built_shapes is not None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in non_default_config(self).items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class StatefulLayer(Layer):
    """A layer that can carry a state from one call to the next (LSTM, GRU).

    By default (``stateful`` False) every call starts from a zero state, as torch's recurrent
    layers do. In stateful mode (``layer.stateful = True``, or ``net.stateful = True`` for all
    the layers of a network) a call starts from the state the previous call ended in (zeros
    after :meth:`reset_state`) and keeps its own final state for the next call, so a long
    sequence can be fed in pieces (MATLAB's ``predictAndUpdateState``). Kept states are
    detached from the autograd graph (truncated backpropagation through time).

    A state is a dict of tensors named in ``state_names``, batch first; ``None`` means zeros.

    Example:
        >>> import torch
        >>> from deeptoolbox.layers import LSTM
        >>> layer = LSTM(4)
        >>> layer.build([(None, 2)])
        >>> layer.stateful = True
        >>> _ = layer(torch.randn(3, 5, 2))
        >>> {k: tuple(v.shape) for k, v in layer.get_state().items()}
        {'hidden': (3, 1, 4), 'cell': (3, 1, 4)}
        >>> layer.reset_state()
        >>> layer.get_state() is None
        True
    """

    state_names: tuple[str, ...] = ()
    stateful: bool = False
    # True: kept and set states stay on the autograd graph, so that gradients flow from one
    # call to the next (a simulation that trains through the recurrent state); False: detached
    state_gradients: bool = False

    def get_state(self) -> dict[str, Any] | None:
        """The kept state (copies), or None when there is none (zeros)."""
        raise NotImplementedError

    def set_state(self, state: dict[str, Any] | None) -> None:
        """Start the next stateful call from ``state`` (None: zeros)."""
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forget the kept state: the next stateful call starts from zeros (MATLAB's
        ``resetState``)."""
        self.set_state(None)


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """Default argument values of ``cls`` and the classes it builds on (subclasses win)."""
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object or klass.__module__.startswith("torch."):
            continue  # torch classes a layer derives from (nn.Linear...) are not its signature
        for key, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults[key] = param.default
            elif param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                defaults.pop(key, None)
    return defaults


def non_default_config(module: nn.Module) -> dict[str, Any]:
    """The recorded constructor arguments that differ from their defaults.

    Example:
        >>> from deeptoolbox.layers import Conv2d
        >>> non_default_config(Conv2d(8, 3, stride=2))
        {'filters': 8, 'kernel_size': 3, 'stride': 2}
    """
    defaults = _constructor_defaults(type(module))
    config = config_of(module)
    return {k: v for k, v in config.items() if k not in defaults or defaults[k] != v}


def config_of(module: nn.Module) -> dict[str, Any]:
    """Return the recorded constructor arguments of a layer or a registered module.

    Example:
        >>> from deeptoolbox.layers import ReLU
        >>> config_of(ReLU())
        {}
    """
    if isinstance(module, Layer):
        return module.get_config()
    get_config = getattr(module, "get_config", None)
    if callable(get_config):
        return dict(get_config())
    if hasattr(module, _CONFIG_ATTR):
        return dict(getattr(module, _CONFIG_ATTR))
    if _REGISTRY.get(layer_type_name(module)) is type(module):
        return {}  # registered, with no constructor of its own: nothing to record
    raise UnregisteredLayerError(
        f"Cannot describe a {type(module).__name__} module for saving: it is neither a "
        "deeptoolbox layer nor a class decorated with @register_layer. "
        "Decorate its class with deeptoolbox.layers.register_layer."
    )


def register_layer(cls: T | None = None, *, name: str | None = None) -> Any:
    """Register a layer class so networks containing it can be saved and loaded.

    Works on :class:`Layer` subclasses and on any ``nn.Module`` subclass: the constructor's
    arguments are recorded on each instance and written to ``network.json``, so they must be
    JSON values (numbers, strings, booleans, lists, dicts, None). Use as ``@register_layer`` or
    ``@register_layer(name="my-block")``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> @register_layer
        ... class Scale(nn.Module):
        ...     def __init__(self, factor: float = 2.0):
        ...         super().__init__()
        ...         self.factor = factor
        ...     def forward(self, x):
        ...         return x * self.factor
        >>> config_of(Scale(3.0))
        {'factor': 3.0}
    """

    def decorate(klass: T) -> T:
        if not (isinstance(klass, type) and issubclass(klass, nn.Module)):
            raise OptionError(f"register_layer expects an nn.Module subclass. Received: {klass!r}.")
        key = name or klass.__name__
        existing = _REGISTRY.get(key)
        origin = (klass.__module__, klass.__qualname__)  # a class defined again (module
        # reloaded, notebook cell re-run) may replace itself; another class may not
        if existing is not None and (existing.__module__, existing.__qualname__) != origin:
            raise OptionError(
                f"register_layer: the name {key!r} is already used by {existing.__module__}."
                f"{existing.__qualname__}. Pass another name: @register_layer(name='...')."
            )
        _capture_init_arguments(klass)
        klass._deeptoolbox_type = key  # type: ignore[attr-defined]
        _REGISTRY[key] = klass
        return klass

    return decorate(cls) if cls is not None else decorate


def layer_type_name(module: nn.Module) -> str:
    """Return the registered type name of a module (its class name if not registered)."""
    return getattr(type(module), "_deeptoolbox_type", type(module).__name__)


def registered_layer(type_name: str) -> type[nn.Module]:
    """Return the class registered under ``type_name``.

    Example:
        >>> registered_layer("Dense").__name__
        'Dense'
    """
    if type_name not in _REGISTRY:  # layer types of subpackages not imported yet (interop)
        import deeptoolbox

        deeptoolbox._load_toolbox()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnregisteredLayerError(
            f"Unknown layer type {type_name!r}. Registered types: {known}. If it is your own "
            "layer, import the module that defines it (decorated with @register_layer) "
            "before loading."
        ) from None


def registered_layers() -> dict[str, type[nn.Module]]:
    """Return a copy of the registry: type name -> class.

    Example:
        >>> "Conv2d" in registered_layers()
        True
    """
    return dict(_REGISTRY)


# -- validation helpers -------------------------------------------------------------------


def check_positive_int(layer: str, option: str, value: object, example: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise OptionError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(
            f"{layer}: `{option}` must be a positive int. Received: {option}={value!r}. "
            f"Example: {example}."
        )
    return value


def check_choice(layer: str, option: str, value: object, allowed: Sequence[object]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise OptionError listing them."""
    if value not in allowed:
        raise OptionError(
            f"{layer}: `{option}` must be one of {', '.join(map(repr, allowed))}. "
            f"Received: {option}={value!r}."
        )
    return value


def check_probability(layer: str, option: str, value: object) -> float:
    """Return ``value`` as float if it lies in [0, 1), else raise OptionError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise OptionError(
            f"{layer}: `{option}` must be a number in [0, 1). Received: {option}={value!r}."
        )
    return float(value)


def as_tuple(layer: str, option: str, value: object, length: int, *, minimum: int = 1) -> tuple:
    """Expand an int to a ``length``-tuple, or check a given sequence; raise OptionError if bad."""
    items = (value,) * length if isinstance(value, int) and not isinstance(value, bool) else value
    valid = (
        isinstance(items, Sequence)
        and len(items) == length
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items)
    )
    if not valid:
        raise OptionError(
            f"{layer}: `{option}` must be an int >= {minimum} or a sequence of {length} such "
            f"ints. Received: {option}={value!r}."
        )
    return tuple(items)


def require_rank(layer: Layer, shape: Shape, ranks: Sequence[int], what: str) -> int:
    """Return the rank of ``shape`` if it is in ``ranks``, else raise SizeMismatchError."""
    if len(shape) not in ranks:
        raise SizeMismatchError(
            f"{type(layer).__name__} expects {what}; received an input of size "
            f"{format_shape(shape)}."
        )
    return len(shape)


def known(layer: Layer, shape: Shape, dims: Sequence[int], what: str) -> None:
    """Raise SizeMismatchError if any of ``dims`` of ``shape`` is a free (None) length."""
    if any(shape[d] is None for d in dims):
        raise SizeMismatchError(
            f"{type(layer).__name__} needs a fixed {what}; received a free length in "
            f"{format_shape(shape)}. Declare the length in the input layer."
        )


def format_shape(shape: Shape | None) -> str:
    """Render a size for messages and tables: ``(1, 28, 28)``, ``(T, 12)`` for free time.

    Example:
        >>> format_shape((None, 12))
        '(T, 12)'
    """
    if shape is None:
        return "-"
    return "(" + ", ".join("T" if d is None else str(d) for d in shape) + ")"


def product(shape: Shape) -> int:
    """Number of elements in a fully known size."""
    return math.prod(int(d) for d in shape)  # type: ignore[arg-type]


def channel_axis(rank: int) -> int:
    """Index of the channel axis in a batch tensor of a given size rank (batch included)."""
    return rank if rank <= 2 else 1
