"""The exception hierarchy: every exception class lives in deeptoolbox.errors (DESIGN.md)."""

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import deeptoolbox
import deeptoolbox.errors as errors

SOURCE = Path(deeptoolbox.__file__).parent


def _all_modules():
    for info in pkgutil.walk_packages(deeptoolbox.__path__, "deeptoolbox."):
        yield importlib.import_module(info.name)


def test_every_exception_class_of_the_package_is_defined_in_errors():
    elsewhere = set()
    for module in _all_modules():
        for obj in vars(module).values():
            if not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue
            if obj.__module__.startswith("deeptoolbox") and obj.__module__ != "deeptoolbox.errors":
                elsewhere.add(f"{obj.__module__}.{obj.__qualname__}")
    assert sorted(elsewhere) == []


def _exception_names() -> set[str]:
    names = {n for n, v in vars(builtins).items() if inspect.isclass(v)}
    names = {n for n in names if issubclass(getattr(builtins, n), BaseException)}
    return names | {n for n, v in vars(errors).items() if inspect.isclass(v)}


def test_no_exception_class_is_written_outside_errors_even_inside_functions():
    """The import walk above sees module attributes only; this reads every class statement."""
    exceptions = _exception_names()
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path == SOURCE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
                if bases & exceptions:
                    found.append(f"{path.relative_to(SOURCE)}:{node.lineno} {node.name}")
    assert found == []


def test_the_check_above_sees_a_class_statement_in_a_function():
    code = "def f():\n    class Oops(ValueError):\n        pass\n"
    classes = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.ClassDef)]
    assert {ast.unparse(b) for b in classes[0].bases} & _exception_names() == {"ValueError"}


PUBLIC_ERRORS = {  # name: the built-in exception a plain-Python caller may catch it as
    "OptionError": (ValueError, TypeError),
    "DataError": (ValueError,),
    "NetworkError": (ValueError,),
    "LayerNotFoundError": (KeyError, ValueError),
    "SizeMismatchError": (ValueError,),
    "NotInitializedError": (RuntimeError, ValueError),
    "InputSizeError": (ValueError,),
    "DataFormError": (ValueError, TypeError),
    "UnregisteredLayerError": (TypeError, ValueError),
    "NetworkFileError": (OSError,),
    "PathOutsideRootError": (PermissionError, OSError),
    "FileWriteError": (OSError,),
    "ResourceLimitError": (ValueError,),
    "MissingDependencyError": (ImportError,),
    "TrainingError": (RuntimeError,),
    "ModelImportError": (ValueError,),
    "ModelExportError": (RuntimeError,),
    "UnknownModelError": (KeyError, ValueError),
    "WeightsError": (OSError,),
    "ChecksumError": (OSError,),
    "TargetError": (ValueError, TypeError),
    "LayerChoiceError": (ValueError, TypeError),
    "UnsupportedLayerError": (TypeError, ValueError),
    "VnnlibError": (ValueError,),
    "CompressionError": (ValueError,),
    "CodegenError": (ValueError,),
    "CompilerError": (RuntimeError,),
    "RequestError": (ValueError,),
    "ServerClosedError": (RuntimeError,),
    "DiagramError": (ValueError,),
    "SimulationError": (RuntimeError,),
    "ExperimentError": (RuntimeError,),
    "StoreError": (OSError,),
}

FAMILIES = {  # errors that derive from another toolbox error, so one except catches the family
    "LayerNotFoundError": "NetworkError",
    "SizeMismatchError": "NetworkError",
    "NotInitializedError": "NetworkError",
    "UnregisteredLayerError": "NetworkError",
    "UnsupportedLayerError": "NetworkError",
    "CompressionError": "NetworkError",
    "ChecksumError": "WeightsError",
    "PathOutsideRootError": "NetworkFileError",
    "UnknownModelError": "OptionError",
    "TargetError": "OptionError",
    "LayerChoiceError": "OptionError",
    "DataFormError": "InputSizeError",  # and an OptionError
}


def test_the_public_errors_are_the_ones_listed_here():
    classes = {n for n in errors.__all__ if inspect.isclass(getattr(errors, n))}
    assert classes - {"DeepToolboxError"} == set(PUBLIC_ERRORS)


@pytest.mark.parametrize("name", sorted(PUBLIC_ERRORS))
def test_each_error_is_a_toolbox_error_and_the_builtin_callers_expect(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DeepToolboxError)
    for builtin in PUBLIC_ERRORS[name]:
        assert issubclass(cls, builtin), f"{name} should also be a {builtin.__name__}"
    if name in FAMILIES:
        assert issubclass(cls, getattr(errors, FAMILIES[name]))


def test_internal_signals_stay_out_of_the_public_names():
    internal = ["NonFiniteLoss", "OutOfTime", "ConversionError", "ModeError", "MetricMissing",
                "StopTraining", "_LayerReached", "_KerasUnsupported", "_TraceDisagrees",
                "_ModeMismatch"]  # fmt: skip
    for name in internal:
        assert inspect.isclass(getattr(errors, name)) and name not in errors.__all__
    assert not issubclass(errors.StopTraining, Exception)  # like KeyboardInterrupt


def test_error_messages_keep_their_text_and_key_errors_are_not_quoted():
    err = errors.LayerNotFoundError("Network 'net' has no layer named 'fc2'.")
    assert str(err) == "Network 'net' has no layer named 'fc2'."
    assert str(errors.UnknownModelError("unknown model 'x'")) == "unknown model 'x'"
    training = errors.TrainingError("Loss is NaN.", result="last good")
    assert (str(training), training.result) == ("Loss is NaN.", "last good")
    nan = errors.NonFiniteLoss(iteration=3, epoch=1, value=float("nan"))
    assert (nan.iteration, nan.epoch, str(nan)) == (3, 1, "loss nan at iteration 3")
