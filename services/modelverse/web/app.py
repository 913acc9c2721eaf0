"""The web service's pages (Starlette, server-side Jinja2 templates; docs/WEB.md).

    /                        the search page
    /search?q=...            a search from the URL (shareable); POST for uploaded pictures/sketches
    /models/<id>?seed=N      a model's page: metadata, fresh samples (seed shown), similar models
    /thumbnail?model=&v=&i=  a stored thumbnail (PNG, cached: the URL names the stats version)
    /healthz                 the web process itself is up (not the gateway)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from modelverse.v1 import search_pb2
from modelverse.web.client import Gateway
from modelverse.web.errors import PageError, page_error
from modelverse.web.query import (
    MAX_PICTURE_BYTES,
    METHOD_LABELS,
    FormError,
    SearchForm,
    check_picture,
    parse_fields,
    too_large_message,
)
from modelverse.web.thumbnails import ThumbnailCache

HERE = Path(__file__).parent
SAMPLE_COUNT = 8
SIMILAR_COUNT = 6
MAX_SEED = 2**31 - 1
# A posted form: two pictures and the text fields. Bigger bodies are read and dropped (so that
# the browser sees the answer instead of a reset connection) up to MAX_DRAIN_BYTES.
MAX_BODY_BYTES = 2 * MAX_PICTURE_BYTES + 64 * 1024
MAX_DRAIN_BYTES = 64 * 1024 * 1024
FACETS_TTL_S = 60.0
IMMUTABLE = "public, max-age=31536000, immutable"
STATIC = HERE / "static"


class VersionedStatic(StaticFiles):
    """The page's own assets. Templates link them as ``/static/NAME?v=DIGEST`` (``asset_url``), so a
    browser keeps each for a year and asks again only when the file changes: a result page costs
    no revalidation round trips for its stylesheet and script."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = IMMUTABLE if versioned else "public, max-age=300"
        return response


def asset_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in folder.iterdir() if p.is_file()}


@dataclass
class Facets:
    """Families and tags offered by the filters: from the first page of ListModels, kept a minute."""

    families: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    fetched_at: float = 0.0


class Pages:
    def __init__(self, gateway: Gateway, thumbnails: ThumbnailCache) -> None:
        self.gateway = gateway
        self.thumbnails = thumbnails
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        environment.filters["b64"] = lambda data: base64.b64encode(data).decode()
        digests = asset_digests(STATIC)
        environment.globals["asset_url"] = lambda name: f"/static/{name}?v={digests[name]}"
        self.templates = Jinja2Templates(env=environment)
        self._facets = Facets()
        self._facets_lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("form", SearchForm())
        context.setdefault("facets", self._facets)
        context.setdefault("method_labels", METHOD_LABELS)
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def error(self, request: Request, error: PageError, form: SearchForm | None = None) -> HTMLResponse:
        return self.render(request, "error.html", error.status, error=error, form=form or SearchForm())

    def facets(self) -> Facets:
        with self._facets_lock:
            if time.monotonic() - self._facets.fetched_at < FACETS_TTL_S:
                return self._facets
        page = self.gateway.stub.ListModels(search_pb2.ListModelsRequest(page_size=1000), timeout=self.gateway.timeout_s)
        facets = Facets(sorted({m.family for m in page.models if m.family}),
                        sorted({t for m in page.models for t in m.tags}), time.monotonic())
        with self._facets_lock:
            self._facets = facets
        return facets

    def facets_if_answering(self) -> Facets:
        """The filters' choices; the last known ones if ListModels fails (they are optional)."""
        try:
            return self.facets()
        except grpc.RpcError:
            return self._facets

    def _cards(self, hits: list[tuple[search_pb2.Model, float | None, int]]) -> list[dict[str, Any]]:
        found = self.thumbnails.get_many([(m.id, m.stats_version) for m, _, _ in hits])
        return [{"model": m, "score": score, "rank": rank, "thumbnails": found.get(m.id)} for m, score, rank in hits]

    def _search(self, form: SearchForm) -> tuple[search_pb2.SearchResponse, list[dict[str, Any]]]:
        response = self.gateway.stub.Search(form.request(), timeout=self.gateway.timeout_s)
        cards = self._cards([(h.model, h.score, h.rank) for h in response.hits])
        for card, hit in zip(cards, response.hits):  # issue 17: "no model fits" shows as low confidence
            card["confidence"] = hit.confidence
        return response, cards

    # -- pages ----------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self.facets)
        except grpc.RpcError as exc:
            return self.error(request, page_error(exc))
        return self.render(request, "search.html")

    async def search(self, request: Request) -> Response:
        form: SearchForm | None = None
        if request.method == "GET" and not request.url.query:
            return RedirectResponse("/", status_code=303)  # the bare address: the empty form
        try:
            if request.method == "POST":
                form = await self._posted_form(request)
                if not form.pictures and form.share_query():
                    # Nothing that cannot travel in a URL: answer at the shareable address.
                    return RedirectResponse(f"/search?{form.share_query()}", status_code=303)
            else:
                form = parse_fields(request.query_params)
                if request.query_params.get("sample_of"):
                    form.pictures.append(await run_in_threadpool(self._sample_picture, request.query_params))
            response, cards = await run_in_threadpool(self._search, form)
            await run_in_threadpool(self.facets_if_answering)
        except FormError as exc:
            # A refused field: the form shown again keeps at least the description typed.
            kept = form or SearchForm(text=(request.query_params.get("q") or "")[:500])
            return self.error(request, PageError(exc.http_status, "The query cannot be run", exc.message), kept)
        except grpc.RpcError as exc:
            return self.error(request, page_error(exc), form)
        share = request.url.query if request.query_params.get("sample_of") else form.share_query()
        return self.render(request, "search.html", form=form, response=response, cards=cards,
                           share=share, searched=True)

    async def _posted_form(self, request: Request) -> SearchForm:
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise FormError("The upload must state its length (Content-Length).", http_status=411)
        if int(length) > MAX_BODY_BYTES:
            if int(length) <= MAX_DRAIN_BYTES:
                async for _ in request.stream():  # read and drop: the browser then shows our answer
                    pass
            raise FormError(too_large_message(int(length)), http_status=413)
        posted = await request.form(max_files=4, max_fields=32)
        form = parse_fields({k: v for k, v in posted.items() if isinstance(v, str)})
        for kind in ("image", "sketch"):
            upload = posted.get(kind)
            if isinstance(upload, UploadFile):
                data = await upload.read()
                if data:
                    form.pictures.append(check_picture(kind, upload.filename or kind, data))
        await posted.close()
        return form

    def _sample_picture(self, params: Any) -> Any:
        """"Search with this image": the sample is drawn again from its model and seed (so the
        link is shareable) and searched as an image."""
        model_id = params.get("sample_of", "")[:200]
        try:
            seed = int(params.get("seed", ""))
            index = int(params.get("index", "0"))
        except ValueError:
            raise FormError("The sample's seed and index must be whole numbers.") from None
        if not (0 <= seed <= MAX_SEED and 0 <= index < SAMPLE_COUNT):
            raise FormError(f"The seed must be in 0..{MAX_SEED} and the index in 0..{SAMPLE_COUNT - 1}.")
        answer = self.gateway.stub.SampleImages(
            search_pb2.SampleImagesRequest(model_id=model_id, count=SAMPLE_COUNT, seed=seed), timeout=60)
        return check_picture("image", f"sample {index} of {model_id} (seed {seed})", answer.images[index])

    async def model(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        raw_seed = request.query_params.get("seed", "")
        if raw_seed and not (raw_seed.isdigit() and int(raw_seed) <= MAX_SEED):
            return self.error(request, PageError(400, "Bad seed", f"The seed must be a whole number in 0..{MAX_SEED}."))
        seed = int(raw_seed) if raw_seed else secrets.randbelow(MAX_SEED)
        try:
            model = await run_in_threadpool(
                self.gateway.stub.GetModel, search_pb2.GetModelRequest(id=model_id), timeout=self.gateway.timeout_s)
            samples, sampling_error = await run_in_threadpool(self._samples, model_id, seed)
            similar, thumbnails = await run_in_threadpool(self._similar, model)
        except grpc.RpcError as exc:
            return self.error(request, page_error(exc))
        return self.render(request, "model.html", model=model, seed=seed, next_seed=secrets.randbelow(MAX_SEED),
                           samples=samples, sampling_error=sampling_error, similar=similar, own=thumbnails)

    def _samples(self, model_id: str, seed: int) -> tuple[list[bytes], str]:
        try:
            answer = self.gateway.stub.SampleImages(
                search_pb2.SampleImagesRequest(model_id=model_id, count=SAMPLE_COUNT, seed=seed), timeout=60)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            return [], "This model's generator is not available here, so no fresh samples can be drawn."
        return list(answer.images), ""

    def _similar(self, model: search_pb2.Model) -> tuple[list[dict[str, Any]], Any]:
        request = search_pb2.SearchRequest(top_k=SIMILAR_COUNT)
        request.parts.add(model_id=model.id)
        hits = self.gateway.stub.Search(request, timeout=self.gateway.timeout_s).hits
        cards = self._cards([(model, None, 0), *((h.model, h.score, h.rank) for h in hits)])
        return cards[1:], cards[0]["thumbnails"]

    async def thumbnail(self, request: Request) -> Response:
        params = request.query_params
        model_id = params.get("model", "")
        try:
            index, version = int(params.get("i", "")), int(params.get("v", "0"))
        except ValueError:
            return Response("bad thumbnail index or version", status_code=400, media_type="text/plain")
        if not model_id or len(model_id) > 200:
            return Response("bad model id", status_code=400, media_type="text/plain")
        try:
            entry = await run_in_threadpool(self.thumbnails.get, model_id, version)
        except grpc.RpcError as exc:
            error = page_error(exc)
            return Response(error.message, status_code=error.status, media_type="text/plain")
        if not 0 <= index < len(entry.images):
            return Response("no such thumbnail", status_code=404, media_type="text/plain")
        etag = f'"{entry.stats_version}-{index}"'
        # The URL names the stats version: when it is the one served, the bytes never change.
        cache = IMMUTABLE if version == entry.stats_version else "public, max-age=300"
        headers = {"Cache-Control": cache, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(entry.images[index], media_type="image/png", headers=headers)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


def create_app(gateway: Gateway, *, thumbnails: ThumbnailCache | None = None) -> Starlette:
    pages = Pages(gateway, thumbnails or ThumbnailCache(gateway))
    routes = [
        Route("/", pages.home),
        Route("/search", pages.search, methods=["GET", "POST"]),
        Route("/models/{model_id:path}", pages.model),
        Route("/thumbnail", pages.thumbnail),
        Route("/healthz", pages.healthz),
        Mount("/static", VersionedStatic(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        pages.thumbnails.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.error(request, PageError(404, "Page not found", "There is no page at this address."))

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.pages = pages
    return app
