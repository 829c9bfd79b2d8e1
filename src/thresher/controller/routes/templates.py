"""People's routes for OpenJD templates: submit a template as a job, or check what it would make.

A refused template is a 422 whose body lists every issue the library reported, each with its
location: `{"error": "invalid_template", "message": ..., "field": "template", "errors": [...]}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from thresher.controller.compile import plan_template, template_summary
from thresher.controller.convert import job_out
from thresher.controller.routes.deps import CallerDep, FarmDep, json_answer
from thresher.core.errors import InvalidInput
from thresher.openjd import TemplateError
from thresher.schemas import api
from thresher.schemas import openjd as schema

router = APIRouter(prefix="/api/v1/templates", tags=["templates"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"model": schema.TemplateErrorBody, "description": "the template is invalid"}
}


def template_error_body(exc: InvalidInput) -> schema.TemplateErrorBody | None:
    """The located issues of a thresher.openjd.TemplateError; None for any other error."""
    if not isinstance(exc, TemplateError):
        return None
    issues = exc.errors
    return schema.TemplateErrorBody(
        message=exc.message,
        errors=[schema.TemplateIssueOut(location=e.location, message=e.message) for e in issues],
    )


def refused(exc: InvalidInput) -> JSONResponse:
    body = template_error_body(exc)
    if body is None:
        raise exc
    return JSONResponse(
        body.model_dump(exclude={"errors": {"__all__": {"field"}}}), status_code=422
    )


@router.post("/jobs", status_code=201, response_model=api.JobOut, responses=_REFUSED)
async def submit(body: schema.TemplateJobIn, farm: FarmDep, caller: CallerDep) -> Response:
    """Submit a jobtemplate-2023-09 template with parameter values as a job."""
    try:
        job = await farm.call(farm.jobs.submit_template, caller, body)
    except InvalidInput as exc:
        return refused(exc)
    return await json_answer(lambda: job_out(job), status_code=201)


@router.post("/check", response_model=schema.TemplateCheckOut, responses=_REFUSED)
async def check(
    body: schema.TemplateJobIn, caller: CallerDep
) -> schema.TemplateCheckOut | JSONResponse:
    """Validate a template with parameter values; say which blocks and tasks it would make."""
    caller.require("admin", "wrangler", "artist")
    try:
        plan = plan_template(body)
    except InvalidInput as exc:
        return refused(exc)
    return template_summary(plan)
