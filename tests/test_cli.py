import subprocess
import sys

import pytest
import torch

import deeptoolbox
from deeptoolbox import load
from deeptoolbox.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"deeptoolbox {deeptoolbox.__version__}"


def test_console_script_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "deeptoolbox.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and deeptoolbox.__version__ in result.stdout


def test_demo_trains_to_97_percent_and_writes_results_that_reload(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path)]) == 0  # default epochs, as `make demo`
    out = capsys.readouterr().out
    assert "Test accuracy:" in out and "identical outputs = True" in out
    accuracy = float(out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy >= 97.0
    for name in ("training-progress.png", "confusion-chart.png", "digits-explained.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        assert str((tmp_path / name).resolve()) in out
    net = load(tmp_path / "digits-cnn.zip")
    assert net.classes == [str(d) for d in range(10)]
    assert (tmp_path / "digits-cnn.png").stat().st_size > 0
    code = (tmp_path / "digits_cnn.py").read_text()
    namespace = {}
    exec(code, namespace)
    assert namespace["build_network"]().to_json() == net.to_json()
    import numpy as np
    import onnxruntime

    from deeptoolbox.datasets import digits

    session = onnxruntime.InferenceSession(str(tmp_path / "digits-cnn.onnx"))
    images = np.asarray(digits()[0][:4], dtype=np.float32).reshape(4, 1, 8, 8)
    (scores,) = session.run(None, {session.get_inputs()[0].name: images})
    np.testing.assert_allclose(scores, net.eval()(torch.from_numpy(images)).detach(), atol=1e-5)


def test_models_command_lists_a_family(capsys):
    assert main(["models", "--family", "resnet"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "resnet50" in out


def test_convert_then_analyze_and_verify(tmp_path, capsys):
    import deeptoolbox as dtb
    from deeptoolbox import layers as L

    net = dtb.Network([L.FeatureInput(2, name="x"), L.Dense(2, name="fc")])
    saved = dtb.save(net, tmp_path / "net.zip")
    assert main(["convert", str(saved), str(tmp_path / "net.onnx")]) == 0
    assert main(["analyze", str(tmp_path / "net.onnx")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "learnables" in out
    prop = tmp_path / "prop.vnnlib"
    declarations = [f"(declare-const X_{i} Real)" for i in range(2)]
    declarations += [f"(declare-const Y_{i} Real)" for i in range(2)]
    box = [f"(assert ({op} X_{i} {v}))" for i in range(2) for op, v in (("<=", 1.0), (">=", -1.0))]
    prop.write_text("\n".join([*declarations, *box, "(assert (>= Y_0 1000.0))"]) + "\n")
    assert main(["verify", str(tmp_path / "net.onnx"), str(prop), "--timeout", "30"]) == 0
    assert capsys.readouterr().out.strip() == "unsat"


def test_toolbox_errors_exit_with_status_2(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def _imports_of(args):
    """The modules a fresh `python -m deeptoolbox.cli ARGS` process imports."""
    code = (
        "import sys\n"
        "from deeptoolbox.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stdout.split("MODULES ")[1].split()


@pytest.mark.parametrize("args", [["--help"], ["--version"], [], ["classify", "--help"]])
def test_help_and_version_do_not_import_torch(args):
    out, modules = _imports_of(args)
    assert "torch" not in modules and "numpy" not in modules
    argparse_only = {  # modules that only build parsers (the experiment command's subcommands)
        "deeptoolbox.cli", "deeptoolbox._version", "deeptoolbox.experiments",
        "deeptoolbox.experiments._cli", "deeptoolbox.experiments._worker_args",
        "deeptoolbox._serve_cli",
    }  # fmt: skip
    assert not [m for m in modules if m.startswith("deeptoolbox.") and m not in argparse_only]
    assert ("usage: deeptoolbox" in out) or (deeptoolbox.__version__ in out)


def test_console_script_help_answers(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deeptoolbox.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "classify" in result.stdout


def test_lazy_package_loads_the_toolbox_on_first_use():
    code = (
        "import sys\n"
        "import deeptoolbox\n"
        "assert 'torch' not in sys.modules\n"
        "net = deeptoolbox.Network\n"
        "assert 'deeptoolbox.hub' in sys.modules and 'deeptoolbox.interop' in sys.modules\n"
        "print(sorted(set(deeptoolbox.__all__) - set(dir(deeptoolbox))))\n"
        "assert deeptoolbox.network.Network is net and deeptoolbox.inference.predict\n"
        "assert not hasattr(deeptoolbox, 'no_such_thing')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_loading_a_network_finds_layer_types_of_subpackages_not_imported_yet(tmp_path):
    class Sine(torch.nn.Module):
        def forward(self, x):
            return torch.sin(x) * 2

    net = deeptoolbox.from_torch(Sine(), torch.randn(2, 3))
    path = deeptoolbox.save(net, tmp_path / "sine.zip")
    code = (
        "import sys, torch\n"
        "from deeptoolbox.network import load\n"
        "assert 'deeptoolbox.interop' not in sys.modules\n"
        f"net = load({str(path)!r})\n"
        "print(net(torch.full((1, 3), 0.5)).tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((torch.sin(torch.full((1, 3), 0.5)) * 2).tolist())


def _saved_image_net(tmp_path):
    import deeptoolbox as dtb
    from deeptoolbox import layers as L

    torch.manual_seed(0)
    net = dtb.Network(
        [
            L.ImageInput((3, 16, 16), name="img"),
            L.Conv2d(4, 3, padding=1, name="conv"),
            L.ReLU(),
            L.GlobalAvgPool(),
            L.Dense(3, name="fc"),
            L.Softmax(),
        ],
        classes=["apple", "pear", "plum"],
    )
    return net, dtb.save(net, tmp_path / "my.zip")


def test_classify_command_with_a_saved_network(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    import deeptoolbox as dtb

    net, saved = _saved_image_net(tmp_path)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "new.png")
    assert main(["classify", str(tmp_path / "new.png"), "--model", str(saved), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    _, scores = dtb.classify(net, str(tmp_path / "new.png"))
    best = int(scores.argmax())
    assert lines[0] == f"{tmp_path / 'new.png'} ({saved}):" and len(lines) == 3
    assert lines[1].split()[0] == net.classes[best]
    assert float(lines[1].split()[1].rstrip("%")) == pytest.approx(
        100 * float(scores[0, best]), abs=0.01
    )
    onnx = dtb.export_onnx(net, tmp_path / "my.onnx")
    assert main(["classify", str(tmp_path / "new.png"), "--model", str(onnx), "--top", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == net.classes[best]
    folder = dtb.save(net, tmp_path / "saved-folder")
    assert main(["classify", str(tmp_path / "new.png"), "--model", str(folder), "--top", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == net.classes[best]


def test_classify_command_explains_a_saved_network_given_as_weights(tmp_path, capsys):
    _, saved = _saved_image_net(tmp_path)
    image = str(tmp_path / "x.png")
    args = ["classify", image, "--model", "resnet18", "--weights", str(saved)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "saved with deeptoolbox.save" in err and f"--model {saved}" in err
    assert "inline_container" not in err
    assert main(["classify", image, "--model", str(saved), "--weights", str(saved)]) == 2
    assert "--weights applies to pretrained model names" in capsys.readouterr().err
    assert main(["classify", image, "--model", str(tmp_path / "other.zip")]) == 2
    assert "other.zip" in capsys.readouterr().err
