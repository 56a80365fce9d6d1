"""Request and response models of the document routes: uploads, ingestion jobs, the document list."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

JobStateName = Literal["queued", "running", "done", "failed"]
FileStatus = Literal["pending", "added", "updated", "unchanged", "failed"]


class FileResultModel(BaseModel):
    """What happened (or will happen) to one uploaded file."""

    file_name: str = Field(description="The sanitised name the file was saved under.")
    status: FileStatus = Field(description="pending until the job reaches the file.")
    doc_id: str | None = Field(None, description="The document the file became (None when it failed).")
    units: int = Field(0, description="Units indexed for the document.")
    error: str | None = Field(None, description="Why the file failed.")


class JobModel(BaseModel):
    """An ingestion job: the files of one upload, indexed in the background."""

    id: str
    state: JobStateName = Field(
        description="queued, running, done (every file was tried: see each file's status) or failed "
        "(the job itself could not run, e.g. the store went away)."
    )
    tags: list[str] = Field(default_factory=list)
    files: list[FileResultModel]
    error: str | None = Field(None, description="Why the job failed, when it did.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobAccepted(BaseModel):
    """The answer to an upload: poll ``location`` until the job's state is done or failed."""

    job_id: str
    state: JobStateName
    location: str = Field(description="Path of the job resource (also in the Location header).")
    files: list[str] = Field(description="The sanitised names the files were saved under.")


class DocumentModel(BaseModel):
    """One indexed document."""

    doc_id: str
    title: str
    source: str = Field(description="Path of the source file on the server.")
    modality: str = Field(description="page, image, video or text (of its first unit).")
    units: int = Field(description="Units of the document now in the index.")
    complete: bool = Field(description="False while the document is being (re)indexed.")
    tags: list[str] = Field(default_factory=list)
    ingested_at: str = ""


class DocumentPage(BaseModel):
    """A page of the document list, sorted by source path."""

    total: int
    limit: int
    offset: int
    documents: list[DocumentModel]


class DeletedDocument(BaseModel):
    """The answer to a delete."""

    doc_id: str
    deleted_units: int
    source_removed: bool = Field(
        description="True when the source was an upload of this server and its file was removed too."
    )
