"""Decoding any image a user's generator may have written: every PIL mode, odd sizes, huge
files, broken bytes: an (H, W, 3) uint8 array or one line naming the file."""

import io

import numpy as np
import pytest
from PIL import Image

from emf_bench.errors import EmfBenchError
from emf_bench.images import MAX_SIDE, decode_image, read_image


def encoded(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def test_sixteen_bit_greyscale_keeps_its_levels_instead_of_turning_white():
    levels = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    image, resized = decode_image(encoded(Image.fromarray(levels)), "grey16.png")
    assert resized is None and image.dtype == np.uint8 and image.shape == (2, 2, 3)
    assert image[:, :, 0].tolist() == [[0, 64], [128, 255]]
    assert (image[:, :, 0] == image[:, :, 2]).all()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I", "RGB"])
def test_every_common_mode_decodes_to_rgb8(mode):
    rgb = Image.fromarray(np.array([[[200, 30, 40], [10, 220, 30]]], dtype=np.uint8))
    image = rgb.convert(mode)
    fmt = {"CMYK": "JPEG", "I": "TIFF"}.get(mode, "PNG")
    array, _ = decode_image(encoded(image, fmt), f"x.{fmt.lower()}")
    assert array.shape == (1, 2, 3) and array.dtype == np.uint8
    if mode in ("RGB", "RGBA", "P"):
        assert abs(int(array[0, 0, 0]) - 200) <= 8 and array[0, 0, 0] > array[0, 0, 1]


def test_palette_with_transparency_and_float_images():
    palette = Image.new("P", (3, 3))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.info["transparency"] = 1
    array, _ = decode_image(encoded(palette, transparency=1), "p.png")
    assert array[0, 0].tolist() == [255, 0, 0]
    floats = Image.fromarray(np.ones((4, 4), dtype=np.float32))
    with pytest.raises(EmfBenchError, match=r"image f.tif: floating-point pixels \(mode F\)"):
        decode_image(encoded(floats, "TIFF"), "f.tif")


def test_huge_images_are_downscaled_and_say_from_what_size():
    wide = Image.new("RGB", (MAX_SIDE * 2 + 1, 10), (200, 10, 10))
    array, resized = decode_image(encoded(wide), "wide.png")
    assert resized == (10, MAX_SIDE * 2 + 1)
    assert max(array.shape[:2]) <= MAX_SIDE and array.shape[0] % 2 == 0
    assert array[0, 0].tolist() == [200, 10, 10]


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"), (b"not a png", "cannot be decoded"),
    (encoded(Image.new("RGB", (8, 8)))[:40], "cannot be decoded"),
])
def test_broken_bytes_are_one_line_naming_the_file(data, message):
    with pytest.raises(EmfBenchError, match=f"image bad.png {message}") as err:
        decode_image(data, "bad.png")
    assert "\n" not in str(err.value)


def test_read_image_tells_a_folder_from_a_missing_file(tmp_path):
    with pytest.raises(EmfBenchError, match="is a folder, not a file"):
        read_image(tmp_path)
    with pytest.raises(EmfBenchError, match="does not exist"):
        read_image(tmp_path / "nope.png")
