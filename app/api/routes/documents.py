"""Documents: upload files for background indexing, follow the job, list and delete documents, and
serve the pictures of indexed units.

Statuses: an upload answers 202 with the job's location; 413 when the body is over
``max_upload_bytes`` (refused from Content-Length before reading, or as soon as the streamed body
passes it); 415 for a file type the indexer does not read; 503 while the job queue is full. A file that
cannot be indexed (corrupt, encrypted) is accepted: its job's file result says ``failed`` and why.
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from app.api.jobs import JobQueueFullError, jobs_for, parse_tags, receive_upload, remove_uploaded_source
from app.api.schemas.documents import DeletedDocument, DocumentModel, DocumentPage, JobAccepted, JobModel
from app.api.services import Services, get_services, run_model
from core.errors import MediaTooLargeError, UnsupportedFormatError
from indexer.ingest import delete_document as remove_document
from indexer.loaders import SUPPORTED_EXTENSIONS

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["documents"])

_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _services(request: Request) -> Services:
    return get_services(request)


ServicesDep = Annotated[Services, Depends(_services)]


@router.post(
    "/documents",
    status_code=202,
    response_model=JobAccepted,
    responses={
        413: {"description": "The body is larger than max_upload_bytes."},
        415: {"description": "A file type the indexer does not read, or a body that is not multipart."},
        503: {"description": "Too many ingestion jobs are waiting."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "tags": {"type": "string", "description": "Comma-separated tags."},
                        },
                    }
                }
            },
        }
    },
)
async def upload_documents(request: Request, services: ServicesDep) -> JSONResponse:
    """Upload one or more files (multipart field ``files``, optional ``tags``) to index in the background.

    Answers 202 at once with the job id; poll ``GET /v1/jobs/{id}`` (the Location header) until the job
    is done. The files are kept on the server as the documents' sources.
    """
    limit = services.settings.max_upload_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        # Refused before a byte of the body is read.
        raise MediaTooLargeError(f"the upload is {int(length)} bytes; the server's limit is {limit} bytes")
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedFormatError("send the files as multipart/form-data (field 'files')")
    registry = jobs_for(services)
    try:
        registry.check_capacity()
    except JobQueueFullError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "30"}) from None

    job_id = registry.new_job_id()
    folder = registry.uploads_dir / job_id
    upload = await receive_upload(
        request.stream(), content_type, folder, max_bytes=limit, extensions=SUPPORTED_EXTENSIONS
    )
    if not upload.files:
        folder.rmdir()
        raise HTTPException(422, "the upload holds no file (send them in the multipart field 'files')")
    try:
        tags = parse_tags(upload.fields.get("tags", []))
        job = registry.submit(job_id, upload.files, tags)
    except BaseException as exc:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, JobQueueFullError):
            raise HTTPException(503, str(exc), headers={"Retry-After": "30"}) from None
        raise
    location = f"/v1/jobs/{job.id}"
    names = [f.name for f in upload.files]
    body = JobAccepted(job_id=job.id, state=job.state, location=location, files=names)
    logger.info("job %s: %d files uploaded", job.id, len(upload.files))
    return JSONResponse(body.model_dump(mode="json"), status_code=202, headers={"Location": location})


@router.get("/jobs/{job_id}", response_model=JobModel, responses={404: {"description": "Unknown job."}})
def get_job(job_id: str, services: ServicesDep) -> JobModel:
    """An ingestion job: its state and each file's result."""
    job = jobs_for(services).get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept until newer ones replace them)")
    return job


@router.get("/documents", response_model=DocumentPage)
def list_documents(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Documents per page.")] = 100,
    offset: Annotated[int, Query(ge=0, description="Documents to skip.")] = 0,
) -> DocumentPage:
    """The indexed documents, sorted by source path, with the number of units each has in the index."""
    records = sorted(services.store.documents(), key=lambda r: r.source)
    page = records[offset : offset + limit]
    documents = [
        DocumentModel(
            doc_id=r.doc_id,
            title=r.title,
            source=r.source,
            modality=r.modality,
            units=services.store.count(r.doc_id),  # live: a document being re-indexed has no final count yet
            complete=r.complete,
            tags=list(r.tags),
            ingested_at=r.ingested_at,
        )
        for r in page
    ]
    return DocumentPage(total=len(records), limit=limit, offset=offset, documents=documents)


@router.delete(
    "/documents/{doc_id}",
    response_model=DeletedDocument,
    responses={404: {"description": "Unknown document."}},
)
async def delete_document(doc_id: str, services: ServicesDep) -> DeletedDocument:
    """Remove a document: its units, their media and its record (and its file, when it was uploaded here)."""
    if _as_uuid(doc_id) is None or services.store.get_document(doc_id) is None:
        raise HTTPException(404, f"no document {doc_id!r}")
    # On the model thread: writes to the store are serialised with the ingestion jobs.
    return await run_model(services, _delete, services, doc_id)


def _delete(services: Services, doc_id: str) -> DeletedDocument:
    record = services.store.get_document(doc_id)
    if record is None:  # deleted while this request waited for the model thread
        raise HTTPException(404, f"no document {doc_id!r}")
    removed = remove_document(services.store, services.media, doc_id)
    source_removed = remove_uploaded_source(services, record.source)
    logger.info("deleted document %s (%d units)", doc_id, len(removed))
    return DeletedDocument(doc_id=doc_id, deleted_units=len(removed), source_removed=source_removed)


@router.get(
    "/units/{unit_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {"description": "No picture."}},
)
def unit_image(unit_id: str, services: ServicesDep) -> FileResponse:
    """The picture a unit was indexed with (a page render, an image or a keyframe), at indexed size."""
    return _unit_file(services, unit_id, "image")


@router.get(
    "/units/{unit_id}/thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No picture."}},
)
def unit_thumbnail(unit_id: str, services: ServicesDep) -> FileResponse:
    """A small JPEG of the unit (at most 384 px on its longest side)."""
    return _unit_file(services, unit_id, "thumbnail")


@router.get(
    "/units/{unit_id}/frames/{index}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No such keyframe."}},
)
def unit_frame(unit_id: str, index: int, services: ServicesDep) -> FileResponse:
    """Keyframe ``index`` (0-based, in time order) of a video unit, as indexed."""
    return _unit_file(services, unit_id, "frames", index)


@router.get(
    "/documents/{doc_id}/source",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "No such file."}},
)
def document_source(doc_id: str, services: ServicesDep) -> FileResponse:
    """The document's source file as it was indexed (a UI plays a video hit from its start time with it).

    Only the path in the document's own record is served, and only while it is still that file: see
    :func:`servable_source`. Answers support HTTP range requests.
    """
    record = services.store.get_document(doc_id) if _as_uuid(doc_id) else None
    if record is None:
        raise HTTPException(404, f"no document {doc_id!r}")
    path = servable_source(services.settings, doc_id, record.source)
    try:
        stat = path.stat()  # taken here, so a file removed just now is a 404 and not the response's 500
    except OSError:
        raise HTTPException(404, f"the source of document {doc_id} is no longer at {record.source}") from None
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(
        path,
        stat_result=stat,
        media_type=media_type,
        filename=path.name,
        content_disposition_type="inline",
    )


def servable_source(settings: Any, doc_id: str, source: str) -> Path:
    """The file to serve for a document whose record names ``source``.

    The indexer records a file's resolved absolute path, so the rule is: the path must still resolve
    to itself (no symlink put on the way since, pointing elsewhere) and be a regular file, inside
    ``<data_dir>/uploads`` or one of ``source_roots``; with no ``source_roots`` set, any such file.

    Raises:
        HTTPException: 404 with the reason (gone, not a file, or outside the served folders).
    """
    recorded = Path(source)
    try:
        resolved = recorded.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a name the OS refuses
        raise HTTPException(404, f"the source of document {doc_id} is no longer at {source}") from None
    if not recorded.is_absolute() or resolved != recorded:
        logger.warning("document %s: its source %s now resolves to %s; not served", doc_id, source, resolved)
        raise HTTPException(404, f"the source of document {doc_id} is no longer the file that was indexed")
    if not resolved.is_file():
        raise HTTPException(404, f"the source of document {doc_id} is not a regular file")
    roots = [Path(settings.data_dir) / "uploads", *settings.source_roots]
    inside = any(resolved.is_relative_to(root.resolve()) for root in roots)
    if not inside and settings.source_roots:
        raise HTTPException(
            404, f"the source of document {doc_id} lies outside the folders this server serves (source_roots)"
        )
    return resolved


def _as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _unit_file(services: Services, unit_id: str, kind: str, index: int | None = None) -> FileResponse:
    # Only a reference read from the unit's own payload is ever resolved: the client names a unit id,
    # never a path.
    point_id = _as_uuid(unit_id)
    if point_id is None:
        raise HTTPException(404, f"no unit {unit_id!r} (unit ids are UUIDs)")
    payload = services.store.get_unit_payload(point_id, [kind])
    if payload is None:
        raise HTTPException(404, f"no unit {unit_id}")
    ref = payload.get(kind)
    if index is not None:  # one entry of a list (keyframes)
        refs = ref if isinstance(ref, list) else []
        if not refs:
            raise HTTPException(404, f"unit {unit_id} has no keyframes (only video units have them)")
        if not 0 <= index < len(refs):
            raise HTTPException(404, f"unit {unit_id} has {len(refs)} keyframes; {index} is out of range")
        ref, kind = refs[index], f"keyframe {index}"
    if not isinstance(ref, str) or not ref:
        raise HTTPException(404, f"unit {unit_id} has no {kind} (text units have no pictures)")
    try:
        path: Path = services.media.resolve(ref)
    except ValueError:
        logger.warning("unit %s names media outside the media store: %r", unit_id, ref)
        raise HTTPException(404, f"unit {unit_id} has no {kind}") from None
    if not path.is_file():
        raise HTTPException(404, f"the {kind} of unit {unit_id} is missing from the media store")
    media_type = _MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    # A unit id names one version of a file's content, so its pictures never change.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})
