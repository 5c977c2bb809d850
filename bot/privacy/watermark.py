"""QR codes watermarked with the customer's masked id, so a leaked screenshot names its source.

The code uses error correction H and the watermark is faint: light modules stay light and
dark modules stay dark after a scanner's thresholding, so the overlay never costs a module.
"""

from __future__ import annotations

import io
import math

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.exceptions import DataOverflowError

BOX_SIZE = 10  # pixels per module
BORDER = 4  # quiet zone, in modules (the standard's minimum)
WATERMARK_ANGLE = 30  # degrees, counter-clockwise
WATERMARK_FILL = (200, 40, 40, 56)  # reddish, ~22 % alpha: visible, never a module flip
_FONT_SIZE = 16
_GAP = (28, 40)  # horizontal and vertical space between repeats, in pixels


def render_qr_png(data: str, watermark: str) -> bytes:
    """A PNG of ``data`` as a QR code with ``watermark`` repeated diagonally over it.

    An empty watermark draws nothing. Raises ``ValueError`` if ``data`` does not fit in a QR
    code at error correction H (about 1,200 bytes).
    """
    image = _qr_image(data)
    if watermark:
        image = Image.alpha_composite(image, _watermark_layer(image.size, watermark))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


MAX_SIDE = 4096  # pixels: a QR code image is far smaller; refuses decompression bombs


def watermark_png(image: bytes, watermark: str) -> bytes:
    """A QR code image made elsewhere (WeCom's, a contact's own) as a PNG with ``watermark``
    over it, like ``render_qr_png``. Raises ``ValueError`` if ``image`` is not a usable image.
    """
    try:
        with Image.open(io.BytesIO(image)) as opened:
            if max(opened.size) > MAX_SIDE:
                raise ValueError(f"image is {opened.size[0]}x{opened.size[1]} pixels, too large")
            picture = opened.convert("RGBA")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a usable image ({type(exc).__name__})") from None
    if min(picture.size) < 200:  # small codes are scaled up so the watermark stays legible
        factor = math.ceil(200 / min(picture.size))
        picture = picture.resize(
            (picture.width * factor, picture.height * factor), Image.Resampling.NEAREST
        )
    if watermark:
        picture = Image.alpha_composite(picture, _watermark_layer(picture.size, watermark))
    out = io.BytesIO()
    picture.convert("RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def _qr_image(data: str) -> Image.Image:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_H, border=BORDER)
    qr.add_data(data)
    try:
        qr.make(fit=True)
    except DataOverflowError:
        raise ValueError(f"{len(data)} characters are too many for a QR code") from None
    matrix: list[list[bool]] = qr.get_matrix()  # includes the quiet zone
    side = len(matrix)
    modules = Image.new("L", (side, side))
    modules.putdata([0 if dark else 255 for row in matrix for dark in row])
    scaled = modules.resize((side * BOX_SIZE, side * BOX_SIZE), Image.Resampling.NEAREST)
    return scaled.convert("RGBA")


def _watermark_layer(size: tuple[int, int], text: str) -> Image.Image:
    """A transparent layer of ``text`` tiled on a grid, then turned to the diagonal."""
    width, height = size
    # Tile a square big enough that the rotated square still covers every corner.
    side = math.ceil(math.hypot(width, height))
    tiles = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tiles)
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default()
    if isinstance(font, ImageFont.FreeTypeFont):  # without FreeType, the bitmap font is fixed
        font = font.font_variant(size=_FONT_SIZE)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    step_x = math.ceil(right - left) + _GAP[0]
    step_y = math.ceil(bottom - top) + _GAP[1]
    for row, y in enumerate(range(-step_y, side + step_y, step_y)):
        offset = (step_x // 2) * (row % 2)  # stagger rows, like a brick wall
        for x in range(-step_x + offset, side + step_x, step_x):
            draw.text((x, y), text, font=font, fill=WATERMARK_FILL)
    rotated = tiles.rotate(WATERMARK_ANGLE, resample=Image.Resampling.BICUBIC)
    dx, dy = (side - width) // 2, (side - height) // 2
    return rotated.crop((dx, dy, dx + width, dy + height))
