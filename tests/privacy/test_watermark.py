"""Watermarked QR codes: a real PNG, visibly marked, and every module still reads the same."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from bot.privacy.watermark import render_qr_png

DATA = "weixin://contacts/profile/wx_ab12cd89"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def open_png(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


def test_returns_a_png_of_sane_size() -> None:
    png = render_qr_png(DATA, "oAbC****12")
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 200_000
    image = open_png(png)
    assert image.format == "PNG"
    assert image.width == image.height
    assert 200 <= image.width <= 1000


def test_watermark_changes_the_pixels() -> None:
    plain = open_png(render_qr_png(DATA, "")).convert("RGB")
    marked = open_png(render_qr_png(DATA, "oAbC****12")).convert("RGB")
    assert plain.size == marked.size
    assert ImageChops.difference(plain, marked).getbbox() is not None


def test_watermark_never_flips_a_module() -> None:
    # What a scanner sees after thresholding must be identical with and without the mark.
    def binarised(png: bytes) -> bytes:
        return open_png(png).convert("L").point(lambda v: 255 if v >= 128 else 0).tobytes()

    assert binarised(render_qr_png(DATA, "oAbC****12")) == binarised(render_qr_png(DATA, ""))


def test_non_latin_watermark_does_not_fail() -> None:
    assert render_qr_png(DATA, "客户 oAbC****12").startswith(PNG_MAGIC)


def test_too_much_data_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        render_qr_png("x" * 5000, "oAbC****12")
