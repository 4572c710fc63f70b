"""FunctionLayer: a layer computing a stored tensor expression (MATLAB's functionLayer).

The expression is text in a small, safe language: it is parsed with Python's ``ast`` and
checked against a whitelist once, when the layer is made, and then interpreted node by node
with the torch functions of :data:`FUNCTIONS`. Nothing is ever passed to ``eval``, ``exec``
or ``pickle``, so a saved network with a FunctionLayer loads without running foreign code.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from deeptoolbox.errors import OptionError, SizeMismatchError
from deeptoolbox.layers._base import Layer, Shape, format_shape, register_layer

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": torch.abs, "exp": torch.exp, "log": torch.log, "log1p": torch.log1p,
    "expm1": torch.expm1, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "square": torch.square,
    "reciprocal": torch.reciprocal, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
    "asin": torch.asin, "acos": torch.acos, "atan": torch.atan, "atan2": torch.atan2,
    "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "erf": torch.erf,
    "sigmoid": torch.sigmoid, "relu": F.relu, "gelu": F.gelu, "silu": F.silu,
    "softplus": F.softplus, "sign": torch.sign, "floor": torch.floor, "ceil": torch.ceil,
    "round": torch.round, "clamp": torch.clamp, "minimum": torch.minimum,
    "maximum": torch.maximum, "pow": torch.pow, "where": torch.where, "sum": torch.sum,
    "mean": torch.mean, "amax": torch.amax, "amin": torch.amin, "softmax": torch.softmax,
    "log_softmax": torch.log_softmax, "transpose": torch.transpose, "flatten": torch.flatten,
    "cumsum": torch.cumsum, "norm": torch.linalg.vector_norm,
}  # fmt: skip
"""The functions an expression may call, by name (all torch functions of the same name,
``norm`` being ``torch.linalg.vector_norm`` and the activations ``torch.nn.functional``'s)."""

KEYWORDS = frozenset({"dim", "keepdim", "min", "max", "start_dim", "end_dim", "approximate",
                      "beta", "threshold", "ord"})  # fmt: skip
"""The keyword arguments an expression may pass (``sum(x, dim=1, keepdim=True)``)."""

CONSTANTS = {"pi": math.pi, "e": math.e}

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.MatMult: operator.matmul,
}  # fmt: skip
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
            ast.MatMult: "@", ast.Mod: "%", ast.FloorDiv: "//", ast.BitAnd: "&",
            ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
            ast.Not: "not", ast.Invert: "~"}  # fmt: skip
_MAX_LENGTH = 2000
_PROBE_LENGTHS = (7, 11)  # two lengths reveal which output axes follow a free length


def _refuse(expression: str, node: ast.AST, what: str, hint: str) -> OptionError:
    column = getattr(node, "col_offset", 0) + 1
    return OptionError(
        f"FunctionLayer: `expression` {expression!r} uses {what} at column {column}, which is "
        f"not allowed. {hint}"
    )


class _Checker:
    """Walks a parsed expression and refuses every node outside the language."""

    def __init__(self, expression: str, variables: Sequence[str]) -> None:
        self.expression = expression
        self.variables = set(variables)

    def check(self, node: ast.AST) -> None:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self._refuse(node)
        method(node)

    def _refuse(self, node: ast.AST) -> OptionError:
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp):
            op = type(node.op)
            what = f"the operator `{_SYMBOLS.get(op, op.__name__)}`"
        elif isinstance(node, ast.Attribute):
            what = f"the attribute access `.{node.attr}`"
        else:
            what = f"`{ast.get_source_segment(self.expression, node) or type(node).__name__}`"
        hint = (
            "Allowed: numbers, the inputs "
            f"({', '.join(sorted(self.variables))}), pi, e, + - * / ** @, comparisons, "
            "indexing with constant slices, and calls of: "
            f"{', '.join(sorted(FUNCTIONS))}."
        )
        return _refuse(self.expression, node, what, hint)

    def _Expression(self, node: ast.Expression) -> None:
        self.check(node.body)

    def _Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise self._refuse(node)

    def _Name(self, node: ast.Name) -> None:
        if node.id not in self.variables and node.id not in CONSTANTS:
            hint = (
                f"Names are the inputs ({', '.join(sorted(self.variables))}) and the constants "
                "pi and e; functions are called, e.g. exp(x)."
            )
            raise _refuse(self.expression, node, f"the name `{node.id}`", hint)

    def _BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) not in _BINARY:
            raise self._refuse(node)
        self.check(node.left)
        self.check(node.right)

    def _UnaryOp(self, node: ast.UnaryOp) -> None:
        if type(node.op) not in _UNARY:
            raise self._refuse(node)
        self.check(node.operand)

    def _Compare(self, node: ast.Compare) -> None:
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise self._refuse(node)
        self.check(node.left)
        self.check(node.comparators[0])

    def _Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            callee = node.func.id if isinstance(node.func, ast.Name) else None
            if callee is None:
                raise self._refuse(node.func)
            hint = f"Allowed functions: {', '.join(sorted(FUNCTIONS))}."
            raise _refuse(self.expression, node, f"the function `{callee}`", hint)
        for argument in node.args:
            self._argument(argument)
        for keyword in node.keywords:
            if keyword.arg not in KEYWORDS:
                hint = f"Allowed keyword arguments: {', '.join(sorted(KEYWORDS))}."
                what = f"the keyword argument `{keyword.arg or '**'}`"
                raise _refuse(self.expression, keyword.value, what, hint)
            self._argument(keyword.value)

    def _argument(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, bool | str):
            return  # keepdim=True, approximate="tanh"
        if isinstance(node, ast.Tuple):  # dim=(1, 2)
            for item in node.elts:
                self._integer(item)
            return
        self.check(node)

    def _integer(self, node: ast.AST) -> None:
        value = node.operand if isinstance(node, ast.UnaryOp) else node
        if not (
            isinstance(value, ast.Constant)
            and isinstance(value.value, int)
            and not isinstance(value.value, bool)
            and (not isinstance(node, ast.UnaryOp) or isinstance(node.op, ast.USub))
        ):
            hint = "Indices, slice bounds and dimension lists are integer constants."
            what = f"`{ast.get_source_segment(self.expression, node) or type(node).__name__}`"
            raise _refuse(self.expression, node, what, hint)

    def _Subscript(self, node: ast.Subscript) -> None:
        self.check(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        for item in items:
            if isinstance(item, ast.Slice):
                for bound in (item.lower, item.upper, item.step):
                    if bound is not None:
                        self._integer(bound)
            elif not (isinstance(item, ast.Constant) and item.value is Ellipsis):
                self._integer(item)


def _evaluate(node: ast.AST, env: dict[str, Any]) -> Any:
    """Interpret a checked expression node with the values in ``env``."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id] if node.id in env else CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.Compare):
        compare = _COMPARE[type(node.ops[0])]
        return compare(_evaluate(node.left, env), _evaluate(node.comparators[0], env))
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(item, env) for item in node.elts)
    if isinstance(node, ast.Slice):
        bounds = (node.lower, node.upper, node.step)
        return slice(*(None if b is None else _evaluate(b, env) for b in bounds))
    if isinstance(node, ast.Subscript):
        return _evaluate(node.value, env)[_evaluate(node.slice, env)]
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # checked at init
    arguments = [_evaluate(a, env) for a in node.args]
    keywords = {k.arg: _evaluate(k.value, env) for k in node.keywords}
    return FUNCTIONS[node.func.id](*arguments, **keywords)


def parse_expression(expression: str, variables: Sequence[str]) -> ast.Expression:
    """Parse and check an expression; raise OptionError naming the first offending token.

    Example:
        >>> tree = parse_expression("relu(x) * 2", ["x"])
        >>> parse_expression("__import__('os')", ["x"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        deeptoolbox.errors.OptionError: FunctionLayer: `expression` "__import__('os')" uses the function `__import__` at column 1, which is not allowed. Allowed functions: abs, acos, ..., where.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise OptionError(
            "FunctionLayer: `expression` must be a non-empty string, e.g. 'x * sigmoid(x)'. "
            f"Received: expression={expression!r}."
        )
    if len(expression) > _MAX_LENGTH:
        raise OptionError(
            f"FunctionLayer: `expression` has {len(expression)} characters; at most "
            f"{_MAX_LENGTH} are allowed. Split it over several FunctionLayers."
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise OptionError(
            f"FunctionLayer: `expression` {expression!r} is not a valid expression: {err.msg} "
            f"at column {err.offset}."
        ) from None
    _Checker(expression.strip(), variables).check(tree)
    return tree


def _check_variables(inputs: object) -> tuple[str, ...]:
    names = (inputs,) if isinstance(inputs, str) else inputs
    valid = (
        isinstance(names, Sequence)
        and len(names) >= 1
        and all(isinstance(n, str) and n.isidentifier() for n in names)
        and len(set(names)) == len(names)
        and not set(names) & (set(FUNCTIONS) | set(CONSTANTS))
    )
    if not valid:
        raise OptionError(
            "FunctionLayer: `inputs` must be distinct identifiers that are not function or "
            f"constant names, e.g. ('x',) or ('a', 'b'). Received: inputs={inputs!r}."
        )
    return tuple(names)


@register_layer
class FunctionLayer(Layer):
    """A layer computing a stored expression of its inputs (MATLAB's functionLayer).

    ``expression`` is written in a small safe language over the inputs named in ``inputs``
    (also the layer's input ports): numbers, ``pi``, ``e``, ``+ - * / ** @``, comparisons
    (``x > 0``), indexing with constant slices (``x[:, 0]``, ``x[..., 1:3]``) and calls of the
    functions in :data:`FUNCTIONS` with the keyword arguments in :data:`KEYWORDS`. Tensors
    include the batch axis first, in the toolbox's layout ((N, C, H, W), (N, T, C)...). The
    expression is checked when the layer is made (an error names the offending token) and
    is saved as text: loading a network never runs foreign code. The output size is found by
    evaluating the expression on probe tensors of the input sizes.

    Example:
        >>> import torch
        >>> layer = FunctionLayer("x * sigmoid(x)")
        >>> layer.output_shape([(None, 4)])
        (None, 4)
        >>> torch.allclose(layer(torch.ones(1, 2)), torch.nn.functional.silu(torch.ones(1, 2)))
        True
        >>> FunctionLayer("a + mean(b, dim=1, keepdim=True)", inputs=("a", "b")).input_names
        ('a', 'b')
    """

    def __init__(
        self,
        expression: str,
        *,
        inputs: Sequence[str] = ("x",),
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.inputs = _check_variables(inputs)
        self.expression = expression
        self._tree = parse_expression(expression, self.inputs)
        self.input_names = self.inputs

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(input_shapes) != len(self.inputs):
            raise SizeMismatchError(
                f"FunctionLayer: the expression takes {len(self.inputs)} inputs "
                f"({', '.join(self.inputs)}); received {len(input_shapes)}."
            )
        outputs = [self._probe(input_shapes, length) for length in _PROBE_LENGTHS]
        if outputs[0].dim() != outputs[1].dim() or outputs[0].dim() == 0:
            raise SizeMismatchError(
                f"FunctionLayer: {self.expression!r} must return a batch of tensors; received "
                f"sizes {tuple(outputs[0].shape)} and {tuple(outputs[1].shape)} for batches of 2."
            )
        if outputs[0].shape[0] != 2:
            raise SizeMismatchError(
                f"FunctionLayer: {self.expression!r} must keep the batch axis first; for a batch "
                f"of 2 with inputs {', '.join(map(format_shape, input_shapes))} it returned size "
                f"{tuple(outputs[0].shape)}."
            )
        first, second = (tuple(o.shape[1:]) for o in outputs)
        return tuple(a if a == b else None for a, b in zip(first, second, strict=True))

    def _probe(self, input_shapes: list[Shape], length: int) -> torch.Tensor:
        probes = [torch.ones(2, *(length if d is None else d for d in s)) for s in input_shapes]
        try:
            with torch.no_grad():
                result = self.forward(*probes)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            raise SizeMismatchError(
                f"FunctionLayer: {self.expression!r} cannot be computed for inputs of size "
                f"{', '.join(map(format_shape, input_shapes))}: {err}"
            ) from None
        if not isinstance(result, torch.Tensor):
            raise SizeMismatchError(
                f"FunctionLayer: {self.expression!r} must return a tensor; it returned "
                f"{type(result).__name__}."
            )
        return result

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        env = dict(zip(self.inputs, inputs, strict=True))
        return _evaluate(self._tree, env)
