"""The weights cache: locations, download once with checksum checks, offline errors, file loading."""

import hashlib
import os

import pytest
import safetensors.torch
import torch

from deeptoolbox.hub import ChecksumError, WeightsError, _weights, cache_dir, load_weights_file


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    def refuse(url, destination):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(_weights, "_download", refuse)
    monkeypatch.delenv("DEEPTOOLBOX_OFFLINE", raising=False)
    monkeypatch.delenv("DEEPTOOLBOX_CACHE", raising=False)


def named_after_digest(content: bytes, stem: str = "tiny") -> str:
    return f"{stem}-{hashlib.sha256(content).hexdigest()[:8]}.pth"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cache_dir() == tmp_path / "torch" / "hub" / "checkpoints"  # torch.hub's layout
    monkeypatch.setenv("DEEPTOOLBOX_CACHE", str(tmp_path / "dtb"))
    assert cache_dir() == tmp_path / "dtb"
    assert cache_dir(tmp_path / "given") == tmp_path / "given"


def test_cached_file_is_used_without_downloading(tmp_path):
    (tmp_path / "net-abcdef12.pth").write_bytes(b"x")
    found = _weights.fetch("https://example.org/models/net-abcdef12.pth", directory=tmp_path)
    assert found == tmp_path / "net-abcdef12.pth"


def test_offline_missing_file_says_what_to_put_where(monkeypatch, tmp_path):
    monkeypatch.setenv("DEEPTOOLBOX_OFFLINE", "1")
    url = "https://example.org/models/net-abcdef12.pth"
    with pytest.raises(WeightsError) as info:
        _weights.fetch(url, directory=tmp_path, what="pretrained('net')")
    message = str(info.value)
    assert "DEEPTOOLBOX_OFFLINE=1" in message and url in message
    assert str(tmp_path / "net-abcdef12.pth") in message and "pretrained('net')" in message


def test_download_once_verified_then_cached(monkeypatch, tmp_path):
    content = b"published weights"
    name = named_after_digest(content)
    calls = []

    def download(url, destination):
        calls.append(url)
        with open(destination, "wb") as handle:
            handle.write(content)

    monkeypatch.setattr(_weights, "_download", download)
    url = f"https://example.org/{name}"
    first = _weights.fetch(url, directory=tmp_path / "cache")
    second = _weights.fetch(url, directory=tmp_path / "cache")
    assert first == second == tmp_path / "cache" / name
    assert first.read_bytes() == content and calls == [url]
    assert os.listdir(tmp_path / "cache") == [name]  # no temporary file left


def test_checksum_mismatch_is_an_error_and_nothing_is_cached(monkeypatch, tmp_path):
    name = named_after_digest(b"the real file")

    def download(url, destination):
        with open(destination, "wb") as handle:
            handle.write(b"something else")

    monkeypatch.setattr(_weights, "_download", download)
    with pytest.raises(ChecksumError, match="SHA-256") as info:
        _weights.fetch(f"https://example.org/{name}", directory=tmp_path)
    assert name.split("-")[1][:8] in str(info.value)
    assert os.listdir(tmp_path) == []


def test_failed_download_names_the_url_and_the_manual_fix(monkeypatch, tmp_path):
    def download(url, destination):
        raise OSError("network is unreachable")

    monkeypatch.setattr(_weights, "_download", download)
    with pytest.raises(WeightsError, match="unreachable") as info:
        _weights.fetch("https://example.org/net-abcdef12.pth", directory=tmp_path)
    assert "weights='path" in str(info.value) and os.listdir(tmp_path) == []


def test_load_state_dicts_from_torch_and_safetensors_files(tmp_path):
    state = {"weight": torch.randn(3, 2), "bias": torch.randn(3)}
    torch.save(state, tmp_path / "a.pth")
    safetensors.torch.save_file(state, tmp_path / "b.safetensors")
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "c.ckpt")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "d.pt")
    for name in ("a.pth", "b.safetensors", "c.ckpt", "d.pt"):
        loaded = load_weights_file(tmp_path / name)
        assert loaded.keys() == state.keys(), name
        for key in state:
            torch.testing.assert_close(loaded[key], state[key])


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_bad_weight_files_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(WeightsError, match="no file at"):
        load_weights_file(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a weights file at all")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_weights_file(tmp_path / "junk.pth")
    torch.save({"weight": Payload()}, tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="code.pth"):
        load_weights_file(tmp_path / "code.pth")
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="expected a state dict"):
        load_weights_file(tmp_path / "list.pth")
