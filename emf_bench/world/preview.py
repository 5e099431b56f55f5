"""A captioned grid of world images, for looking at what captions and scenes say."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def caption_grid(images: Sequence[np.ndarray], captions: Sequence[str],
                 columns: int | None = None, padding: int = 6) -> Image.Image:
    """Tiles in rows of `columns`, each with its caption wrapped underneath."""
    if not images:
        raise ValueError("no images to lay out")
    tile = images[0].shape[0]
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    font_size = max(11, tile // 10)
    font = _font(font_size)
    chars_per_line = max(12, int(tile / (0.55 * font_size)))
    wrapped = [textwrap.wrap(c, chars_per_line) or [""] for c in captions]
    line_height = font_size + 3
    text_height = max(len(w) for w in wrapped) * line_height + padding
    cell_w, cell_h = tile + padding, tile + text_height + padding
    canvas = Image.new("RGB", (columns * cell_w + padding, rows * cell_h + padding), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, lines) in enumerate(zip(images, wrapped, strict=True)):
        row, col = divmod(i, columns)
        x, y = padding + col * cell_w, padding + row * cell_h
        canvas.paste(Image.fromarray(image), (x, y))
        for k, line in enumerate(lines):
            draw.text((x, y + tile + 3 + k * line_height), line, fill="black", font=font)
    return canvas
