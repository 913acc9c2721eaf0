"""A model's thumbnails as one blob: a few small encoded images (PNG) the indexing fleet kept
from the samples it drew, stored beside the statistics so that a page can show what a model makes.

The blob is an uncompressed zip (``0.png``, ``1.png``, ...): a standard container any tool can
open, written and replaced atomically as one file (directory store) or one hash field (Redis).
PNG data does not compress further, hence ``ZIP_STORED``.
"""

from __future__ import annotations

import io
import zipfile

from modelverse.errors import InvalidInputError
from modelverse.store.errors import StoreCorruptError

MAX_THUMBNAILS = 16
MAX_THUMBNAIL_BYTES = 256 * 1024  # one small picture; a bigger one is not a thumbnail
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_thumbnails(images: list[bytes]) -> list[bytes]:
    """Refuse what is not a short list of small PNG files (a writer's bug, not user input)."""
    if len(images) > MAX_THUMBNAILS:
        raise InvalidInputError(f"at most {MAX_THUMBNAILS} thumbnails per model, got {len(images)}")
    for i, image in enumerate(images):
        if not isinstance(image, bytes) or not image.startswith(PNG_SIGNATURE):
            raise InvalidInputError(f"thumbnail {i} is not a PNG file")
        if len(image) > MAX_THUMBNAIL_BYTES:
            raise InvalidInputError(f"thumbnail {i} has {len(image)} bytes, at most {MAX_THUMBNAIL_BYTES}")
    return list(images)


def thumbnails_to_bytes(images: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for i, image in enumerate(check_thumbnails(images)):
            # A fixed timestamp: the same thumbnails always make the same bytes (idempotent writes).
            archive.writestr(zipfile.ZipInfo(f"{i}.png", date_time=(1980, 1, 1, 0, 0, 0)), image)
    return buffer.getvalue()


def thumbnails_from_bytes(data: bytes, where: str) -> list[bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = sorted(archive.namelist(), key=lambda name: int(name.removesuffix(".png")))
            return check_thumbnails([archive.read(name) for name in names])
    except (zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise StoreCorruptError(f"{where}: unreadable thumbnails ({exc})") from exc
