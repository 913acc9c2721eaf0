"""User images: decoded with limits; every bad upload is a clear ImageError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modelverse.core.types import Method
from modelverse.query.images import ImageError, decode_image, image_files, read_image
from modelverse.query.parts import Modality, Query, default_method, encode_query


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_transparent_sketch_is_drawn_on_white() -> None:
    sketch = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    sketch.putpixel((3, 3), (0, 0, 0, 255))
    rgb = np.asarray(decode_image(png_bytes(sketch)))
    assert rgb.shape == (8, 8, 3)
    assert (rgb[0, 0] == 255).all() and (rgb[3, 3] == 0).all()


def test_grayscale_becomes_rgb() -> None:
    gray = Image.fromarray(np.full((5, 7), 100, dtype=np.uint8), mode="L")
    assert np.asarray(decode_image(png_bytes(gray))).shape == (5, 7, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty image"),
        (b"this is not an image at all", "not a readable image"),
        (png_bytes(Image.new("RGB", (64, 64)))[:60], "not a readable image"),  # truncated
    ],
)
def test_bad_bytes_are_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message) as caught:
        decode_image(data, label="upload")
    assert "BytesIO" not in str(caught.value) and " at 0x" not in str(caught.value)


def test_a_huge_image_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="more than the 10000 allowed"):
        decode_image(png_bytes(Image.new("RGB", (200, 100))), max_pixels=10_000)


def test_folders_and_files(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a directory"):
        image_files(tmp_path / "missing")
    with pytest.raises(ImageError, match="no image files"):
        image_files(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.png"]
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.png")


def test_default_methods_follow_the_quality_benchmark() -> None:
    assert default_method([Modality.TEXT]) is Method.MGF
    assert default_method([Modality.IMAGE]) is Method.GAUSSIAN
    assert default_method([Modality.IMAGE, Modality.IMAGE_SET]) is Method.GAUSSIAN
    assert default_method([Modality.SKETCH]) is Method.MGF  # off every model's cloud, as text is
    assert default_method([Modality.TEXT, Modality.SKETCH]) is Method.MGF
    assert default_method([Modality.TEXT, Modality.IMAGE]) is Method.MGF
    assert default_method([Modality.VECTOR]) is Method.FIRST_MOMENT
    with pytest.raises(ValueError, match="empty query"):
        default_method([])


def test_vector_parts_need_no_encoder_and_weights_must_be_positive() -> None:
    parts = encode_query(Query(vectors=[(np.ones(4), 2.0)]), encoder=None)
    assert parts[0].weight == 2.0
    with pytest.raises(ValueError, match="positive"):
        encode_query(Query(vectors=[(np.ones(4), 0.0)]), encoder=None)
    with pytest.raises(ValueError, match="need an encoder"):
        encode_query(Query(texts=[("a cat", 1.0)]), encoder=None)
    with pytest.raises(ValueError, match="empty query"):
        encode_query(Query(), encoder=None)
