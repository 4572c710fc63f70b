"""The generated folder: portable sources, the demo main.c + Makefile, sanitizers, atomic writes."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from deploy_helpers import COMPILER, inputs_for, requires_cc
from deploy_networks import SUITES, lstm_classifier

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.deploy import CodegenError, _files, generate_c
from deeptoolbox.errors import OptionError


def _small_net() -> Network:
    return Network(
        [
            L.ImageInput((1, 6, 6)),
            L.Conv2d(2, 3, padding=1),
            L.ReLU(),
            L.GlobalAvgPool(),
            L.Dense(3),
            L.Softmax(),
        ]
    )


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_library_code_needs_only_math_and_stdint_and_never_allocates(tmp_path, precision):
    net, shapes = lstm_classifier()
    extra = {"calibration_data": torch.randn(32, 20, 3)} if precision == "int8" else {}
    generate_c(
        net, tmp_path, name="lstm", precision=precision, sequence_length=20, verbose=False, **extra
    )
    for file in ("lstm.c", "lstm_weights.c", "lstm.h"):
        text = (tmp_path / file).read_text()
        includes = set(re.findall(r"#include\s+(\S+)", text))
        assert includes <= {"<math.h>", "<stdint.h>", '"lstm.h"'}, (file, includes)
        assert not re.search(r"\b(malloc|calloc|realloc|free|alloca)\s*\(", text), file
    weights = (tmp_path / "lstm_weights.c").read_text()
    definitions = re.findall(r"^(\w[^\n=]*)\[\d+\] = \{", weights, flags=re.M)
    assert definitions and all(d.startswith("const ") for d in definitions)
    header = (tmp_path / "lstm.h").read_text()
    assert "int lstm_predict(const float *input, float *output);" in header
    assert "void lstm_reset(void);" in header and "int lstm_step(" in header


def test_multi_input_output_header_has_one_pointer_each(tmp_path):
    net, _ = SUITES["normalization"][0]()
    generate_c(net, tmp_path, verbose=False)
    header = (tmp_path / "net.h").read_text()
    signature = re.search(r"int net_predict\(([^)]*)\);", header).group(1)
    params = [p.strip() for p in signature.split(",")]
    assert len(params) == len(net.input_names) + len(net.output_names)
    assert params[0] == "const float *in_img_zscore" and params[-1] == "float *out_volume_pool"


@requires_cc
def test_makefile_builds_the_demo_and_it_prints_the_outputs(tmp_path, builds):
    built = builds.get("lstm", lstm_classifier, sequence_length=20)
    folder = tmp_path / "demo"
    shutil.copytree(built.folder, folder)
    subprocess.run(["make", "-s", f"CC={COMPILER}"], cwd=folder, check=True, capture_output=True)
    (sequence,) = inputs_for(built.net, [(20, 3)], 1, seed=21)
    values = sequence.numpy().ravel()
    (folder / "in.txt").write_text(" ".join(f"{v:.9g}" for v in values))
    demo = str(folder / "c_lstm_demo")
    printed = subprocess.run(
        [demo, "in.txt"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    got = np.array(printed.split(), dtype=np.float32)
    np.testing.assert_array_equal(got, built.code.predict(values).ravel())
    steps = subprocess.run(
        [demo, "--step", "in.txt"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(steps) == 20
    np.testing.assert_allclose(np.array(steps[-1].split(), dtype=np.float32), got, atol=1e-6)
    short = subprocess.run([demo, "-"], input="1 2 3", cwd=folder, capture_output=True, text=True)
    assert short.returncode == 1 and "expected 60 values" in short.stderr


def _harness(builds: list) -> str:
    """A C program calling every build's predict on inputs read from standard input."""
    lines = ["#include <stdio.h>"] + [
        f'#include "{b.folder.name}/{b.code.manifest["name"]}.h"' for b in builds
    ]
    lines += [
        "static float values[1 << 16];",
        "int main(void)",
        "{",
        "    int i, n = 0;",
        '    while (n < (1 << 16) && scanf("%f", &values[n]) == 1) ++n;',
        "    n = 0;",
    ]
    for b in builds:
        m = b.code.manifest
        ins = [
            f"values + n + {sum(p['size'] for p in m['inputs'][:i])}"
            for i in range(len(m["inputs"]))
        ]
        outs = []
        for k, port in enumerate(m["outputs"]):
            lines.append(f"    static float {m['name']}_out{k}[{port['size']}];")
            outs.append(f"{m['name']}_out{k}")
        lines.append(f"    if ({m['name']}_predict({', '.join(ins + outs)}) != 0) return 1;")
        lines.append(f"    n += {sum(p['size'] for p in m['inputs'])};")
        for k, port in enumerate(m["outputs"]):
            lines.append(
                f'    for (i = 0; i < {port["size"]}; ++i) printf("%.9g\\n", (double){outs[k]}[i]);'
            )
    return "\n".join(lines + ["    return 0;", "}", ""])


@requires_cc
def test_generated_code_is_clean_under_address_and_undefined_behaviour_sanitizers(tmp_path, builds):
    chosen = [
        builds.get(s, SUITES[s][0], precision=p, **SUITES[s][1])
        for s in SUITES
        for p in ("float32", "int8")
    ]
    chosen.append(builds.get("lstm", lstm_classifier, precision="int8", sequence_length=20))
    root = chosen[0].folder.parent
    (root / "harness.c").write_text(_harness(chosen))
    sources = [str(root / "harness.c")]
    for b in chosen:
        name = b.code.manifest["name"]
        sources += [str(b.folder / f"{name}.c"), str(b.folder / f"{name}_weights.c")]
    program = tmp_path / "harness"
    flags = [
        "-std=c99",
        "-pedantic",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-O1",
        "-g",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=all",
    ]
    compiled = subprocess.run(
        [COMPILER, *flags, "-o", str(program), *sources, "-lm"], capture_output=True, text=True
    )
    if compiled.returncode != 0 and "asan" in compiled.stderr.lower():
        pytest.skip(f"this compiler has no address sanitizer runtime: {compiled.stderr[-300:]}")
    assert compiled.returncode == 0, compiled.stderr
    feeds, expected = [], []
    for b in chosen:
        shapes = [tuple(p["shape"]) for p in b.code.manifest["inputs"]]
        inputs = inputs_for(b.net, shapes, b.report.batch_size, seed=31)
        feeds += [x.numpy().ravel() for x in inputs]
        out = b.code.predict(*[x.numpy() for x in inputs])
        expected += [o.ravel() for o in (out if isinstance(out, tuple) else (out,))]
    run = subprocess.run(
        [str(program)],
        input=" ".join(f"{v:.9g}" for v in np.concatenate(feeds)),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_array_equal(
        np.array(run.stdout.split(), dtype=np.float32), np.concatenate(expected)
    )


def test_a_failed_generation_leaves_the_previous_folder_untouched(tmp_path):
    folder = tmp_path / "code"
    generate_c(_small_net(), folder, verbose=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    broken = Network([L.FeatureInput(4), L.LayerNorm(), L.Dense(2)])
    with pytest.raises(CodegenError):
        generate_c(broken, folder, verbose=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_crash_while_writing_leaves_the_previous_folder_and_no_leftovers(tmp_path, monkeypatch):
    folder = tmp_path / "code"
    generate_c(_small_net(), folder, verbose=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = []
    original = _files.Path.write_text

    def failing(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_files.Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        generate_c(Network([L.FeatureInput(2), L.Dense(1)]), folder, verbose=False)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["code"]


def test_regenerating_replaces_the_folder_but_not_a_foreign_one(tmp_path):
    folder = tmp_path / "code"
    generate_c(_small_net(), folder, verbose=False)
    generate_c(Network([L.FeatureInput(2), L.Dense(1)]), folder, name="tiny", verbose=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "Makefile",
            "codegen.json",
            "main.c",
            "memory_report.txt",
            "tiny.c",
            "tiny.h",
            "tiny_weights.c",
        ]
    )
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OptionError, match="did not write"):
        generate_c(_small_net(), foreign, verbose=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    file = tmp_path / "file.c"
    file.write_text("")
    with pytest.raises(OptionError, match="is a file"):
        generate_c(_small_net(), file, verbose=False)


@requires_cc
def test_code_with_large_arrays_refuses_to_compile_where_int_has_16_bits(tmp_path):
    from deeptoolbox.deploy import compile_c

    small, large = tmp_path / "small", tmp_path / "large"
    generate_c(Network([L.FeatureInput(4), L.Dense(3)]), small, verbose=False)
    net = Network([L.FeatureInput(256), L.Dense(200), L.ReLU(), L.Dense(2)])
    generate_c(net, large, verbose=False)
    assert "needs_32_bit_int" not in (small / "net.c").read_text()
    assert "typedef char net_needs_32_bit_int[" in (large / "net.c").read_text()
    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(compile_c(large).predict(x), want, atol=1e-5)
    # Pretend int has 16 bits: the check, not a silent overflow, stops the build.
    result = subprocess.run(
        [COMPILER, "-std=c99", "-fsyntax-only", "-Dint=short", "net.c"],
        cwd=large,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "net_needs_32_bit_int" in result.stderr
