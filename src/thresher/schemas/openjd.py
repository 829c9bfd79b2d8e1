"""The HTTP contract of OpenJD submissions: `/api/v1/templates/...`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from thresher.schemas.base import (
    MAX_LIST,
    MAX_PATH,
    Env,
    JobId,
    JsonObject,
    Name,
    PathText,
    Strict,
    Text,
)

MAX_TEMPLATE_CHARS = 2_000_000


class PathMappingRuleIn(Strict):
    """One rule of OpenJD's `pathmapping-1.0` form."""

    source_path_format: str = Field(pattern="^(POSIX|WINDOWS)$")
    source_path: PathText
    destination_path: PathText


class TemplateJobIn(Strict):
    template: Annotated[str, Field(max_length=MAX_TEMPLATE_CHARS)] | JsonObject = Field(
        description="a jobtemplate-2023-09 document: YAML or JSON text, or the object itself"
    )
    parameters: JsonObject = Field(
        default_factory=dict, description="job parameter values; defaults fill the rest"
    )
    environments: list[Annotated[str, Field(max_length=MAX_TEMPLATE_CHARS)] | JsonObject] = Field(
        default_factory=list,
        max_length=100,
        description="environment templates, entered before the job's own",
    )
    template_dir: Annotated[str, Field(max_length=MAX_PATH)] | None = Field(
        default=None,
        description="the template's folder on the submitter's machine: relative PATH defaults "
        "are joined to it (a pure join; nothing is read from it)",
    )
    name: Name | None = Field(default=None, description="job name; default: the template's")
    priority: int = Field(50, ge=0, le=100)
    retries: int = Field(3, ge=0, le=100, description="retries of a failed task")
    after: list[JobId] = Field(
        default_factory=list, max_length=MAX_LIST, description="ids of jobs this one waits on"
    )
    paused: bool = False
    filters: Text | None = Field(default=None, description="job filters, on top of each step's")
    env: Env = Field(default_factory=dict, description="environment of every action")
    path_mapping_rules: list[PathMappingRuleIn] = Field(
        default_factory=list,
        max_length=1000,
        description="rules from the submitter's paths, applied before the worker's own",
    )
    asset_references: JsonObject | None = Field(
        default=None, description="a job bundle's asset references, kept with the job"
    )


class TemplateIssueOut(BaseModel):
    location: str = Field(
        default="", description="where, in the library's notation; empty: the document"
    )
    field: str | None = Field(
        default=None, description="the request field, for a problem outside the template"
    )
    message: str


class TemplateErrorBody(BaseModel):
    """A refused template lists the library's issues; a request refused before the template is
    read (a NUL byte in `env`, a name too long) has the usual error body, with `errors` empty or
    listing fields."""

    error: str = "invalid_template"
    message: str
    field: str | None = "template"
    errors: list[TemplateIssueOut] = Field(default_factory=list)


class StepSummary(BaseModel):
    name: str
    index: int = Field(description="the block index of the step")
    dependencies: list[str]
    tasks: int = Field(description="tasks dispatched (chunks, for a chunked step)")
    items: int = Field(description="the individual tasks OpenJD counts")
    chunk_size: int | None
    target_runtime_s: int | None
    host_filters: list[str]
    unmapped_requirements: list[str] = Field(
        description="host requirements no worker fact stands for (kept, not enforced)"
    )


class TemplateCheckOut(BaseModel):
    name: str
    parameters: dict[str, Any]
    steps: list[StepSummary]
