"""Decoding image files from any generator: every mode PIL opens, odd and huge sizes, broken
bytes. An (H, W, 3) uint8 array, or one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emf_bench.errors import EmfBenchError

# Images with a longer side than this are downscaled before scoring (and the rows say from what
# size): a generator's 8k output would otherwise cost minutes a image in the detector while
# scoring no differently. DPG-Bench grids of four 2048-px tiles stay whole.
MAX_SIDE = 4096
# Beyond this many pixels an image is refused rather than decoded (PIL's own bomb limit).
MAX_PIXELS = 2 * 89_478_485
_HIGH_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _rgb8(image, where: str) -> np.ndarray:
    """Any mode PIL decodes as (H, W, 3) uint8: 16-bit and 32-bit integer greyscale scaled down
    (not clipped to white; 32-bit pixels within 0..255 taken as 8-bit), palette and alpha
    through RGBA, then alpha dropped as GenEval's `convert("RGB")` drops it; floating-point
    images are refused."""
    if image.mode in _HIGH_BIT:
        grey = np.asarray(image).astype(np.int64)
        # 16-bit modes span 0..65535; a 32-bit one ("I") holding 0..255 is 8-bit data
        top = 255 if image.mode == "I" and grey.max(initial=0) <= 255 else 65535
        if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
            raise EmfBenchError(f"image {where}: 32-bit integer pixels outside 0..65535; save "
                                f"it as 8- or 16-bit")
        grey = np.round(grey * (255 / top)).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode == "F":
        raise EmfBenchError(f"image {where}: floating-point pixels (mode F) have no fixed "
                            f"range; save it as an 8-bit RGB image")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return np.asarray(image.convert("RGB"))


def decode_image(data: bytes, where: str, max_side: int = MAX_SIDE
                 ) -> tuple[np.ndarray, tuple[int, int] | None]:
    """An (H, W, 3) uint8 array from an image file's bytes, EXIF orientation applied (as
    GenEval does), and the (H, W) it had if it was downscaled to `max_side` (else None)."""
    import io
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise EmfBenchError(f"image {where} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_PIXELS or min(width, height) < 1:
                    raise EmfBenchError(f"image {where} is {width}x{height}: outside 1 to "
                                        f"{MAX_PIXELS:,} pixels")
                pixels = _rgb8(ImageOps.exif_transpose(image), where)
    except EmfBenchError:
        raise
    except UnidentifiedImageError:
        raise EmfBenchError(f"image {where} cannot be decoded (not an image format PIL "
                            f"reads)") from None
    except Image.DecompressionBombError as err:
        raise EmfBenchError(f"image {where} cannot be decoded ({err})") from None
    except Exception as err:  # a corrupt file trips PIL's parsers in many ways
        raise EmfBenchError(f"image {where} cannot be decoded ({type(err).__name__}: "
                            f"{err})") from None
    height, width = pixels.shape[:2]
    if max(height, width) <= max_side:
        return pixels, None
    scale = max_side / max(height, width)  # even sides: a DPG grid still splits in four
    size = tuple(max(2, round(side * scale / 2) * 2) for side in (width, height))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX)), (height,
                                                                                    width)


def read_image(path: Path) -> np.ndarray:
    """An (H, W, 3) uint8 array of an image file (see `decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise EmfBenchError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise EmfBenchError(f"image {path} is a folder, not a file") from None
    except OSError as err:
        raise EmfBenchError(f"cannot read image {path}: {err.strerror or err}") from None
    return decode_image(data, str(path))[0]
