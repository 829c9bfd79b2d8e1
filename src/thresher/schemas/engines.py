"""The HTTP contract of the engine registry: `/api/v1/engines` and `/api/v1/agent/engines`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from thresher.schemas.base import MAX_INT32, Strict

MAX_SOURCE_CHARS = 1_000_000


class EngineOut(BaseModel):
    name: str
    revision: int | None = Field(description="the current revision (0: built in)")
    builtin: bool = Field(description="the current revision is the built-in one")
    has_builtin: bool = Field(description="this controller ships a built-in engine of this name")
    latest_revision: int
    enabled: bool = Field(description="whether new jobs may use it")
    type: str | None = Field(description="SETTINGS['type']: render, compute, transcode")
    source_hash: str | None
    settings: dict[str, Any]
    parameters: dict[str, Any] = Field(description="PARAMETERS defaults")
    published_by: str | None
    published_at: float | None
    updated_at: float
    description: str = Field(default="", description="SETTINGS['description']")
    vendor: str = Field(default="", description="SETTINGS['vendor']")
    colour: str | None = Field(default=None, description="SETTINGS['colour']: CSS colour")


class EngineList(BaseModel):
    engines: list[EngineOut]


class EngineRevisionOut(BaseModel):
    revision: int
    builtin: bool
    current: bool
    source_hash: str
    published_by: str
    published_at: float


class EngineDetail(EngineOut):
    source: str | None = Field(description="the current revision's source")
    revisions: list[EngineRevisionOut]


class EngineSourceOut(BaseModel):
    name: str
    revision: int
    source_hash: str
    source: str


class EnginePublishIn(Strict):
    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description="Python source")


class EngineRollbackIn(Strict):
    revision: int = Field(
        ge=0, le=MAX_INT32, description="an existing revision; 0 is the built-in one"
    )
