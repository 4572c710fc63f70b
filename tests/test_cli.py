import subprocess
import sys

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


def test_demo_writes_results_that_reload(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Test accuracy:" in out and "identical outputs = True" in out
    accuracy = float(out.split("Test accuracy: ")[1].split("%")[0])
    assert accuracy > 80.0
    net = load(tmp_path / "digits-cnn.zip")
    assert net.classes == [str(d) for d in range(10)]
    assert (tmp_path / "digits-cnn.png").stat().st_size > 0
    code = (tmp_path / "digits_cnn.py").read_text()
    namespace = {}
    exec(code, namespace)
    assert namespace["build_network"]().to_json() == net.to_json()
