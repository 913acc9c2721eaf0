"""The search form: what a person typed, uploaded and drew, checked and turned into the public
API's SearchRequest. Text fields travel in the URL (a shareable link); pictures do not."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from PIL import Image, UnidentifiedImageError

from modelverse.errors import InvalidInputError
from modelverse.v1 import search_pb2

MAX_PICTURE_BYTES = 8 * 1024 * 1024  # the gateway's default limit for one image
MAX_TEXT_CHARS = 500
MAX_TAGS = 16
DEFAULT_TOP_K = 12
MAX_TOP_K = 60
DEFAULT_PICTURE_SHARE = 50  # percent of the weight the pictures get when text is given too
METHODS = {  # the form's value -> the API's method; "auto" lets the gateway choose
    "auto": search_pb2.METHOD_UNSPECIFIED,
    "first_moment": search_pb2.FIRST_MOMENT,
    "mgf": search_pb2.MGF,
    "gaussian": search_pb2.GAUSSIAN,
}
METHOD_LABELS = {
    search_pb2.FIRST_MOMENT: "first moment (cosine with the mean feature)",
    search_pb2.MGF: "1st + 2nd moment",
    search_pb2.GAUSSIAN: "Gaussian density",
    search_pb2.FRECHET: "Fréchet distance (similar models)",
}


class FormError(InvalidInputError):
    """A query the page refuses with a clear message, answered with HTTP ``http_status``."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


@dataclass(frozen=True)
class Picture:
    kind: str  # "image" or "sketch"
    label: str  # what the person calls it (the file's name), for messages
    data: bytes


@dataclass
class SearchForm:
    text: str = ""
    method: str = "auto"
    picture_share: int = DEFAULT_PICTURE_SHARE
    tags: list[str] = field(default_factory=list)
    family: str = ""
    min_resolution: int = 0
    max_resolution: int = 0
    top_k: int = DEFAULT_TOP_K
    like: str = ""  # a model id: "similar models"
    pictures: list[Picture] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.text or self.like or self.pictures)

    def share_query(self) -> str:
        """The URL query string of this search, pictures excepted ("" when nothing to share)."""
        fields = {"q": self.text, "like": self.like, "tags": ", ".join(self.tags), "family": self.family,
                  "min_res": self.min_resolution or "", "max_res": self.max_resolution or ""}
        if self.method != "auto":
            fields["method"] = self.method
        if self.top_k != DEFAULT_TOP_K:
            fields["k"] = self.top_k
        kept = {k: v for k, v in fields.items() if v not in ("", None)}
        return urlencode(kept) if (self.text or self.like) else ""

    def request(self) -> search_pb2.SearchRequest:
        if self.empty:
            raise FormError("Type a description, upload a picture or draw a sketch, then search.")
        request = search_pb2.SearchRequest(top_k=self.top_k, method=METHODS[self.method])
        share = self.picture_share / 100 if self.text and self.pictures else 0.5
        if self.text:
            request.parts.add(text=self.text, weight=2 * (1 - share))
        for picture in self.pictures:
            part = request.parts.add(weight=2 * share / len(self.pictures))
            setattr(part, picture.kind, picture.data)
        if self.like:
            request.parts.add(model_id=self.like)
        request.filter.tags.extend(self.tags)
        if self.family:
            request.filter.families.append(self.family)
        request.filter.min_resolution = self.min_resolution
        request.filter.max_resolution = self.max_resolution
        return request


def _integer(fields: Mapping[str, str], name: str, label: str, low: int, high: int, default: int) -> int:
    raw = (fields.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FormError(f"{label} must be a whole number.") from None
    if not low <= value <= high:
        raise FormError(f"{label} must be between {low} and {high}.")
    return value


def parse_fields(fields: Mapping[str, str]) -> SearchForm:
    """The form's text fields (from the URL or a posted form)."""
    text = " ".join((fields.get("q") or "").split())
    if len(text) > MAX_TEXT_CHARS:
        raise FormError(f"The description has {len(text)} characters; at most {MAX_TEXT_CHARS}.")
    method = fields.get("method") or "auto"
    if method not in METHODS:
        raise FormError(f"Unknown method; choose one of: {', '.join(METHODS)}.")
    tags = [t.strip().lower() for t in (fields.get("tags") or "").split(",") if t.strip()]
    if len(tags) > MAX_TAGS or any(len(t) > 64 for t in tags):
        raise FormError(f"At most {MAX_TAGS} tags of at most 64 characters each.")
    family = (fields.get("family") or "").strip()
    like = (fields.get("like") or "").strip()
    if len(family) > 64 or len(like) > 200:
        raise FormError("The family or model id is too long.")
    form = SearchForm(
        text=text, method=method, tags=tags, family=family, like=like,
        picture_share=_integer(fields, "weight", "The picture weight", 1, 99, DEFAULT_PICTURE_SHARE),
        min_resolution=_integer(fields, "min_res", "The smallest resolution", 0, 1 << 16, 0),
        max_resolution=_integer(fields, "max_res", "The largest resolution", 0, 1 << 16, 0),
        top_k=_integer(fields, "k", "The number of results", 1, MAX_TOP_K, DEFAULT_TOP_K),
    )
    if form.max_resolution and form.min_resolution > form.max_resolution:
        raise FormError("The smallest resolution is above the largest.")
    return form


def check_picture(kind: str, label: str, data: bytes) -> Picture:
    """A picture the gateway can decode, or a FormError that names the file (shortened)."""
    name = (label or kind)[:80]
    if len(data) > MAX_PICTURE_BYTES:
        raise FormError(too_large_message(len(data)), http_status=413)
    try:  # the header only: the gateway decodes the pixels (and says so if they are corrupt)
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise FormError(f"“{name}” is not a picture this page can read: the file is corrupt or not an image "
                        "(PNG, JPEG, WebP, GIF or BMP).") from None
    return Picture(kind, name, data)


def too_large_message(size: int) -> str:
    return (f"The upload is {size / 1e6:.1f} MB; a picture may be at most {MAX_PICTURE_BYTES / 1e6:.1f} MB. "
            "Use a smaller picture (a few hundred pixels a side is plenty).")
