"""Smoke test of examples/remote_data.py: it starts its own S3 server (moto), uploads digits
and trains from s3:// URLs, with every remote image cached locally."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "remote_data.py"


@pytest.mark.slow
def test_remote_data_example_trains_from_s3(tmp_path, monkeypatch, capsys):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "testing" if name != "AWS_DEFAULT_REGION" else "us-east-1")
    spec = importlib.util.spec_from_file_location("remote_data_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--images", "400", "--epochs", "6", "--work", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "s3://digits/images" in printed and "s3://digits/table.parquet" in printed
    assert result["images"] == 400 and result["rows"] == 400
    assert result["cached_files"] == 400  # every image read once from the server, then cached
    assert result["image_accuracy"] > 0.3 and result["table_accuracy"] > 0.5  # chance: 0.1
