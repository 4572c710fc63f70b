"""Data readers on damaged and forged files (issue 22): a toolbox error naming the file,
never a crash of the process. torchvision's PNG decoder and scipy's .mat reader crash
(SIGSEGV) on some damaged files, so those cases run in a child process."""

import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

import deeptoolbox as dtb
from deeptoolbox.data import ImageDatastore, Tokenizer
from deeptoolbox.data._image import decode_image, png_is_sound
from deeptoolbox.data._matfile import check_mat_v5
from deeptoolbox.data._sequence import read_signal
from deeptoolbox.errors import DataError, ResourceLimitError

SRC = Path(__file__).resolve().parents[2] / "src"


def _png(pixels: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, "PNG")
    return stream.getvalue()


def _replace_idat(data: bytes, edit) -> bytes:
    """The PNG with its image data edited and the checksum made valid again."""
    position = 8
    while position < len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        if data[position + 4 : position + 8] == b"IDAT":
            body = edit(bytearray(data[position + 8 : position + 8 + length]))
            chunk = struct.pack(">I", len(body)) + b"IDAT" + bytes(body)
            chunk += struct.pack(">I", zlib.crc32(b"IDAT" + bytes(body)))
            return data[:position] + chunk + data[position + 12 + length :]
        position += 12 + length
    raise AssertionError("no IDAT chunk")


def _flip_middle(body: bytearray) -> bytearray:
    body[len(body) // 2] ^= 0xFF
    return body


def _run_in_child(code: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


@pytest.mark.parametrize(
    "edit",
    [_flip_middle, lambda b: b[: len(b) // 2], lambda b: bytearray(b"\0") + b[1:]],
    ids=["flipped-byte", "truncated-data", "bad-zlib-header"],
)
def test_a_png_with_damaged_image_data_is_a_data_error_not_a_crash(tmp_path, edit):
    pixels = (np.arange(64 * 64 * 3).reshape(64, 64, 3) % 251).astype(np.uint8)
    damaged = _replace_idat(_png(pixels), edit)
    assert not png_is_sound(damaged)
    path = tmp_path / "damaged.png"
    path.write_bytes(damaged)
    done = _run_in_child(f"""
        from deeptoolbox.data import ImageDatastore
        from deeptoolbox.errors import DataError
        try:
            ImageDatastore([{str(path)!r}])[0]
        except DataError as err:
            print("DataError:", err)
    """)
    assert done.returncode == 0, (
        f"the reader crashed (exit {done.returncode}): {done.stderr[-500:]}"
    )
    assert "DataError:" in done.stdout and "damaged.png" in done.stdout


def test_sound_pngs_of_every_colour_type_still_decode_exactly():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    for pixels in (rgb, rgb[..., 0], np.dstack([rgb, rgb[..., :1]])):
        data = _png(pixels)
        assert png_is_sound(data)
        decoded = decode_image(data, "stored", "x.png").permute(1, 2, 0).numpy()
        expected = pixels[..., :3] if pixels.ndim == 3 else pixels[..., None]
        np.testing.assert_array_equal(decoded, expected)


def test_an_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path):
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.raises(ResourceLimitError, match=r"huge.png.*10,000,000,000.*max_image_pixels"):
        ImageDatastore([str(path)])[0]
    header = struct.pack(">IIBBBBB", 8_000, 8_000, 8, 2, 0, 0, 0)  # under the limit
    chunk = (
        struct.pack(">I", 13) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    )
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)  # but 64 million pixels in 33 bytes
    with pytest.raises(DataError, match=r"8000 x 8000 pixels in 33 bytes.*truncated or forged"):
        ImageDatastore([str(path)])[0]
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(jpeg, "JPEG")
    data = bytearray(jpeg.getvalue())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", 65_000, 65_000)
    (tmp_path / "huge.jpg").write_bytes(bytes(data))
    with pytest.raises(ResourceLimitError, match="huge.jpg"):
        ImageDatastore([str(tmp_path / "huge.jpg")])[0]


def test_a_damaged_mat_file_is_a_data_error_before_scipy_reads_it(tmp_path):
    stream = io.BytesIO()
    scipy.io.savemat(stream, {"signal": np.arange(12.0).reshape(6, 2)})
    data = bytearray(stream.getvalue())
    check_mat_v5(bytes(data), "ok.mat")  # sound files pass
    real = data.index(b"signal") + 8  # the tag of the real part follows the padded name
    assert struct.unpack("<I", data[real : real + 4])[0] == 9  # miDOUBLE
    data[real : real + 4] = struct.pack("<I", 0)  # an invalid type: scipy segfaults on it
    path = tmp_path / "damaged.mat"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"damaged.mat.*damaged \(the real part of a 6x2 matrix"):
        read_signal(str(path))
    for kw in ({}, {"do_compression": True}):
        stream = io.BytesIO()
        scipy.io.savemat(stream, {"x": np.ones((3, 2)), "t": "text", "c": np.array([1 + 2j]),
                                  "s": {"a": 1}}, **kw)  # fmt: skip
        check_mat_v5(stream.getvalue(), "many.mat")


def test_an_npy_header_declaring_more_than_the_file_holds_is_refused(tmp_path):
    stream = io.BytesIO()
    np.save(stream, np.zeros(4, np.float32))
    data = stream.getvalue().replace(b"(4,)", b"(999999999,)")
    header_end = data.index(b"\n") + 1
    data = data[:8] + struct.pack("<H", header_end - 10) + data[10:]
    path = tmp_path / "forged.npy"
    path.write_bytes(data)
    with pytest.raises(ResourceLimitError, match=r"forged.npy.*999,999,999 elements .* 16 bytes"):
        read_signal(str(path))


def test_a_tokenizer_file_with_bad_values_names_the_file(tmp_path):
    path = tmp_path / "tok.json"
    Tokenizer().fit(["a b c"]).save(path)
    text = path.read_text().replace('"lowercase": true', '"lowercase": [1]')
    path.write_text(text.replace('"max_tokens": null', '"max_tokens": [1]'))
    with pytest.raises(DataError, match="tok.json"):
        Tokenizer.load(path)
    path.write_text("[" * 10_000 + "]" * 10_000)
    with pytest.raises(ResourceLimitError, match="tok.json.*max_json_depth"):
        Tokenizer.load(path)
    assert isinstance(dtb.ReadLimits().max_image_pixels, int)


def test_tokenizer_patterns_and_flags_of_the_wrong_kind_are_refused():
    from deeptoolbox.errors import OptionError

    with pytest.raises(OptionError, match="matches the empty string"):
        Tokenizer(pattern="")
    with pytest.raises(OptionError, match="`lowercase` must be True or False"):
        Tokenizer(lowercase={"x": [1]})
