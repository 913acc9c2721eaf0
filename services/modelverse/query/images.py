"""Decoding user images with limits, so a corrupt or huge upload is a clear error, not a crash."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from modelverse.errors import InvalidInputError, ResourceExhaustedError

# 40 megapixels: far above any generator's output, far below what exhausts a worker's memory.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 32 * 1024 * 1024
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ImageError(InvalidInputError):
    """An image that cannot be used as a query: unreadable, corrupt, empty or too large."""


class ImageTooLarge(ResourceExhaustedError, ImageError):
    """Over the byte or pixel limit (RESOURCE_EXHAUSTED, not INVALID_ARGUMENT)."""


def decode_image(
    data: bytes, *, label: str = "image", max_pixels: int = MAX_IMAGE_PIXELS, max_bytes: int = MAX_IMAGE_BYTES
) -> Image.Image:
    """Decode image bytes into an RGB picture; transparent areas become white (sketches).

    The CLI and the gateway both decode with this function, so a picture gives the same features
    whichever way it arrives."""
    if not data:
        raise ImageError(f"{label}: empty image")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{label}: {len(data)} bytes, more than the {max_bytes} allowed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            width, height = picture.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{label}: {width}x{height} pixels, more than the {max_pixels} allowed; downscale it"
                )
            picture.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{label}: {exc}") from exc
    except UnidentifiedImageError as exc:
        # PIL's own message names the in-memory file object ("<_io.BytesIO object at 0x...>")
        raise ImageError(f"{label}: not a readable image (unknown format or corrupt data)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: not a readable image ({_without_file_object(str(exc))})") from exc
    return to_rgb(picture)


def _without_file_object(message: str) -> str:
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the data", message)[:200]


def to_rgb(picture: Image.Image) -> Image.Image:
    if picture.mode in ("RGBA", "LA", "P", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return picture.convert("RGB")


def read_image(path: Path | str, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, label=str(path), max_pixels=max_pixels)


def image_files(directory: Path | str) -> list[Path]:
    """The image files of a folder, sorted by name; an error if there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ImageError(f"{directory}: not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageError(f"{directory}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files
