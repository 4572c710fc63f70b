"""Smoke test of examples/remote_data.py: it starts its own S3 server (moto), uploads digits
and trains from s3:// URLs, with every remote image cached locally."""

import pytest


@pytest.mark.slow
def test_remote_data_example_trains_from_s3(run_example, tmp_path, monkeypatch, capsys):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "testing" if name != "AWS_DEFAULT_REGION" else "us-east-1")
    result = run_example(
        "remote_data.py", "--images", "400", "--epochs", "6", "--work", str(tmp_path)
    )
    printed = capsys.readouterr().out
    assert "s3://digits/images" in printed and "s3://digits/table.parquet" in printed
    assert result["images"] == 400 and result["rows"] == 400
    assert result["cached_files"] == 400  # every image read once from the server, then cached
    assert result["image_accuracy"] > 0.3 and result["table_accuracy"] > 0.5  # chance: 0.1
