"""Knowledge bases: list them, add content (multipart uploads, URLs and texts, ingested in the
background with a status to poll), search, list and delete documents.

The knowledge bases served are the app's ``knowledge=`` and those of its agents
(``Agent(knowledge=kb)``), by name (``app.state.knowledge``). Reading and searching need the
``knowledge`` scope, adding and deleting ``knowledge:write`` (an API key grants both).
Ingest jobs run in the worker that accepted them; their status is kept in the knowledge
base's store, so any worker answers for them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from ..errors import HTTPError, json_response
from ..ids import path_id
from ..routing import Op, Query, parse_json, query_int

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ...knowledge import KnowledgeBase

__all__ = ["ROUTES", "KnowledgeJobs", "knowledge_bases_of"]

_READ = "knowledge"
_WRITE = "knowledge:write"
_TAG = "knowledge"
MAX_FILES = 256


# -- schemas --------------------------------------------------------------------------------


class KnowledgeBaseOut(BaseModel):
    name: str
    description: str | None = None
    filters: dict[str, str] = Field(description="declared filter fields and their JSON types")
    documents: int
    chunks: int
    dims: int | None = None
    embedder: str | None = None


class KnowledgeBaseList(BaseModel):
    knowledge_bases: list[KnowledgeBaseOut]


class TextIn(BaseModel):
    source: str = Field(min_length=1, max_length=2048)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    markdown: bool = False


class ContentIn(BaseModel):
    """Content to add (as JSON; files go as multipart/form-data with the same fields)."""

    urls: list[str] = Field(default_factory=list, max_length=1000)
    texts: list[TextIn] = Field(default_factory=list, max_length=10000)
    metadata: dict[str, Any] = Field(default_factory=dict, description="added to every document")


class JobOut(BaseModel):
    job_id: str
    knowledge_base: str
    status: Literal["running", "completed", "failed"]
    items: int
    done: int
    chunks: int
    created_at: float
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class SearchIn(BaseModel):
    query: str = Field(min_length=1, max_length=10000)
    top_k: int = Field(default=5, ge=1, le=100)
    filters: dict[str, Any] | None = None
    mode: Literal["hybrid", "vector", "text"] | None = None
    min_score: float | None = None


class Hit(BaseModel):
    source: str
    position: int
    score: float
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class SearchOut(BaseModel):
    hits: list[Hit]


class DocumentOut(BaseModel):
    source: str
    hash: str
    chunks: int
    metadata: dict[str, Any]
    updated_at: float


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class DeleteIn(BaseModel):
    sources: list[str] = Field(default_factory=list, max_length=10000)
    filters: dict[str, Any] | None = None


class DeletedCount(BaseModel):
    deleted: int


MULTIPART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "files to add (their names are their sources)",
        },
        "urls": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "string", "description": "a JSON object added to every document"},
    },
}


# -- state ----------------------------------------------------------------------------------


class KnowledgeJobs:
    """The ingest jobs of this worker (kept for ``keep`` seconds after they end)."""

    def __init__(self, keep: float = 3600.0) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.keep = keep

    def start(
        self, kb: KnowledgeBase, items: list[Any], metadata: dict[str, Any], failed: list[Any]
    ) -> dict[str, Any]:
        """Ingest ``items`` in a task; ``failed`` are uploads that could not be read (they
        are failed items of the report)."""
        now = time.time()
        for job_id in [
            j for j, v in self.jobs.items() if (v["finished_at"] or now) < now - self.keep
        ]:
            del self.jobs[job_id]
        job: dict[str, Any] = {
            "job_id": uuid.uuid4().hex,
            "knowledge_base": kb.name,
            "status": "running",
            "items": len(items) + len(failed),
            "done": 0,
            "chunks": 0,
            "created_at": now,
            "finished_at": None,
            "report": None,
            "error": None,
        }
        self.jobs[job["job_id"]] = job

        last_saved = [0.0]

        async def save(force: bool = False) -> None:
            if force or time.monotonic() - last_saved[0] > 0.5:
                last_saved[0] = time.monotonic()
                try:  # the status in the store: any worker can answer for the job
                    await kb.store.save_job(job)
                except Exception:  # a status write must not fail the ingest
                    pass

        async def progress(p: Any) -> None:
            job["done"], job["chunks"] = p.done, p.chunks
            await save()

        async def run() -> None:
            from ...errors import UnexpectedError, VivaceError
            from ...knowledge import IngestReport, ItemResult

            try:
                report = (
                    await kb.aadd(*items, metadata=metadata or None, on_progress=progress)
                    if items
                    else IngestReport()
                )
                report.items[:0] = [ItemResult(e.source, "failed", error=e) for e in failed]
                job["report"] = report.to_dict()
                job["done"], job["chunks"] = job["items"], report.chunks
                job["status"] = "completed"
            except Exception as exc:
                err = exc if isinstance(exc, VivaceError) else UnexpectedError.wrap(exc)
                job["status"], job["error"] = "failed", err.to_dict()
            finally:
                job["finished_at"] = time.time()
                await save(force=True)

        async def run_saved() -> None:
            await save(force=True)
            await run()

        task = asyncio.get_running_loop().create_task(run_saved())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return job

    async def shutdown(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            try:
                await t
            except BaseException:
                pass


def knowledge_bases_of(agents: Any, extra: Any = ()) -> dict[str, KnowledgeBase]:
    """The knowledge bases to serve: ``extra`` and those the agents use, by name."""
    out: dict[str, Any] = {}
    for kb in extra or ():
        out[kb.name] = kb
    for a in agents:
        k = getattr(a, "knowledge", None)
        k = getattr(k, "kb", k)  # a KnowledgeContext wraps its knowledge base
        if k is not None and hasattr(k, "asearch"):
            out.setdefault(k.name, k)
    return out


def _bases(request: Request) -> dict[str, KnowledgeBase]:
    return getattr(request.app.state, "knowledge", None) or {}


def _kb(request: Request) -> KnowledgeBase:
    name = path_id(request, "kb")
    kb = _bases(request).get(name)
    if kb is None:
        raise HTTPError(404, "knowledge_base_not_found", f"no knowledge base {name!r}", param="kb")
    return kb


def _jobs(request: Request) -> KnowledgeJobs:
    state = request.app.state
    jobs = getattr(state, "knowledge_jobs", None)
    if jobs is None:
        jobs = state.knowledge_jobs = KnowledgeJobs()
    return jobs


async def _info(kb: KnowledgeBase) -> dict[str, Any]:
    stored = await kb.store.get_base(kb.name)
    return {
        "name": kb.name,
        "description": kb.description,
        "filters": kb.declared_filters
        if stored is None
        else {**stored.filters, **kb.declared_filters},
        "documents": stored.documents if stored else 0,
        "chunks": stored.chunks if stored else 0,
        "dims": stored.dims if stored else None,
        "embedder": stored.embedder if stored else None,
    }


# -- handlers -------------------------------------------------------------------------------


async def list_knowledge_bases(request: Request) -> Response:
    bases = _bases(request)
    infos = await asyncio.gather(*(_info(kb) for _, kb in sorted(bases.items())))
    return json_response({"knowledge_bases": list(infos)})


async def get_knowledge_base(request: Request) -> Response:
    return json_response(await _info(_kb(request)))


async def add_content(request: Request) -> Response:
    import json

    from ...knowledge import Document, IngestError

    kb = _kb(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    items: list[Any] = []
    failed: list[IngestError] = []
    metadata: dict[str, Any] = {}
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        from starlette.datastructures import UploadFile

        from ...knowledge.readers import read_bytes

        limit = request.app.state.settings.max_body_bytes
        form = await request.form(max_files=MAX_FILES, max_fields=1000, max_part_size=limit)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                name = value.filename or key
                data = await value.read()
                try:  # an upload that cannot be read is a failed item of the job's report
                    items += read_bytes(data, name, filename=name, content_type=value.content_type)
                except IngestError as exc:
                    failed.append(exc)
            elif key in ("urls", "url"):
                items += [u for u in str(value).split() if u]
            elif key == "metadata":
                try:
                    metadata = json.loads(str(value) or "{}")
                except ValueError:
                    metadata = None  # type: ignore[assignment]
                if not isinstance(metadata, dict):
                    raise HTTPError(
                        400, "invalid_metadata", "metadata must be a JSON object", param="metadata"
                    )
    else:
        body: ContentIn = await parse_json(request, ContentIn)
        items = [
            *body.urls,
            *(Document(t.source, t.text, dict(t.metadata), t.markdown) for t in body.texts),
        ]
        metadata = body.metadata
    if not items and not failed:
        raise HTTPError(400, "no_content", "send files, urls or texts", param="files")
    for u in items:
        if isinstance(u, str) and not u.startswith(("http://", "https://")):
            raise HTTPError(400, "invalid_url", f"not an http(s) URL: {u!r}", param="urls")
    job = _jobs(request).start(kb, items, metadata, failed)
    await asyncio.sleep(0)  # let a small job start before answering
    headers = {"location": f"/knowledge/{kb.name}/jobs/{job['job_id']}"}
    return json_response(job, 202, headers=headers)


async def get_job(request: Request) -> Response:
    kb = _kb(request)
    job_id = path_id(request, "job_id")
    job = _jobs(request).jobs.get(job_id)
    if job is None:  # started by another worker: its status is in the store
        job = await kb.store.get_job(job_id)
    if job is None or job["knowledge_base"] != kb.name:
        raise HTTPError(404, "job_not_found", f"no ingest job {job_id!r}", param="job_id")
    return json_response(job)


async def search(request: Request) -> Response:
    kb = _kb(request)
    body: SearchIn = await parse_json(request, SearchIn)
    hits = await kb.asearch(
        body.query, top_k=body.top_k, filters=body.filters, mode=body.mode, min_score=body.min_score
    )
    return json_response({"hits": [h.citation() | {"metadata": h.metadata} for h in hits]})


async def list_documents(request: Request) -> Response:
    kb = _kb(request)
    limit = query_int(request, "limit", 100, 1, 1000)
    offset = query_int(request, "offset", 0, 0, 10**9)
    return json_response({"documents": await kb.adocuments(limit=limit, offset=offset)})


async def delete_by_source(request: Request) -> Response:
    kb = _kb(request)
    sources = request.query_params.getlist("source")
    if not sources:
        raise HTTPError(400, "nothing_to_delete", "give one or more ?source=", param="source")
    return json_response({"deleted": await kb.adelete(*sources)})


async def delete_documents(request: Request) -> Response:
    kb = _kb(request)
    body: DeleteIn = await parse_json(request, DeleteIn)
    if not body.sources and not body.filters:
        raise HTTPError(400, "nothing_to_delete", "give sources and/or filters", param="sources")
    n = await kb.adelete(*body.sources, filters=body.filters)
    return json_response({"deleted": n})


_KB_ERRORS: dict[int, Any] = {400: None, 404: None}
_BODY_ERRORS: dict[int, Any] = {400: None, 404: None, 413: None, 415: None, 422: None}

ROUTES = [
    Op("GET", "/knowledge", list_knowledge_bases, "The knowledge bases served", _TAG, _READ,
       responses={200: KnowledgeBaseList}),
    Op("GET", "/knowledge/{kb}", get_knowledge_base, "A knowledge base", _TAG, _READ,
       responses={200: KnowledgeBaseOut, **_KB_ERRORS}),
    Op("POST", "/knowledge/{kb}/content", add_content,
       "Add files (multipart), URLs and texts, ingested in the background (poll the job)",
       _TAG, _WRITE, body=ContentIn, multipart=MULTIPART_SCHEMA,
       responses={202: JobOut, **_BODY_ERRORS}),
    Op("GET", "/knowledge/{kb}/jobs/{job_id}", get_job, "An ingest job's status and report",
       _TAG, _READ, responses={200: JobOut, **_KB_ERRORS}),
    Op("POST", "/knowledge/{kb}/search", search, "Search a knowledge base", _TAG, _READ,
       body=SearchIn, responses={200: SearchOut, **_BODY_ERRORS}),
    Op("GET", "/knowledge/{kb}/documents", list_documents, "The documents of a knowledge base",
       _TAG, _READ, responses={200: DocumentList, **_KB_ERRORS},
       query=[Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
              Query("offset", {"type": "integer", "minimum": 0})]),
    Op("DELETE", "/knowledge/{kb}/documents", delete_by_source,
       "Delete documents by source (?source=..., repeatable)", _TAG, _WRITE,
       responses={200: DeletedCount, **_KB_ERRORS},
       query=[Query("source", {"type": "string"}, "a document's source", required=True)]),
    Op("POST", "/knowledge/{kb}/documents/delete", delete_documents,
       "Delete documents by source and/or metadata filter", _TAG, _WRITE, body=DeleteIn,
       responses={200: DeletedCount, **_BODY_ERRORS}),
]  # fmt: skip
