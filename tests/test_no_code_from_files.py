"""No code from files (issue 22 item 3): every call in the toolbox's source that could run code
stored in a file is listed here, with why it is safe; a new one fails this test until it is
reviewed and added."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "deeptoolbox"

# calls that deserialize or execute, and the keyword that makes the call safe (None: never safe)
SAFE_KEYWORD = {
    "torch.load": ("weights_only", "True"),
    "np.load": ("allow_pickle", "False"),
    "numpy.load": ("allow_pickle", "False"),
    "pickle.load": None,
    "pickle.loads": None,
    "marshal.loads": None,
    "eval": None,
}
# where the calls that run code may stay, and why
ALLOWED = {
    # import_pytorch: only after trust_code=True (tests/interop/test_torch_interop.py)
    ("interop/torch/_api.py", "torch.jit.load"),
    ("interop/torch/_api.py", "torch.export.load"),
    # the exporters reload the file they have just written, to check it against the network
    ("interop/_verify.py", "torch.jit.load"),
    ("interop/_verify.py", "torch.export.load"),
    ("deploy/_export.py", "torch.jit.load"),
    ("deploy/_export.py", "torch.export.load"),
    ("deploy/_executorch.py", "torch.export.load"),
    # an experiment runs the user's own setup code, stored with the experiment by its author
    ("experiments/_code.py", "exec"),
    ("experiments/_code.py", "compile"),
    ("experiments/_cli.py", "exec"),
    ("experiments/_cli.py", "compile"),
}
RUNS_CODE = {"torch.jit.load", "torch.export.load", "exec", "compile"}


def _calls():
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                yield path.relative_to(SOURCE).as_posix(), node, ast.unparse(node.func)


def test_every_deserializing_call_is_made_safe_by_its_keyword():
    found = []
    for where, node, name in _calls():
        if name not in SAFE_KEYWORD:
            continue
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        safe = SAFE_KEYWORD[name]
        if safe is None or keywords.get(safe[0]) != safe[1]:
            found.append(f"{where}:{node.lineno} {name}({keywords})")
    assert found == []


def test_calls_that_run_code_stay_where_they_are_reviewed():
    found = {(where, name) for where, _, name in _calls() if name in RUNS_CODE}
    assert found <= ALLOWED, sorted(found - ALLOWED)
    assert ("interop/torch/_api.py", "torch.jit.load") in found  # the scan sees them
