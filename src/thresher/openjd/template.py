"""OpenJD job templates as job plans: validation, parameter values, and lazy tasks per step.

A plan holds no task list. Each step keeps the library's random-access parameter-space iterator,
so task `i` of a block is computed from its index. `JobPlan.to_json()` is what a controller
stores (the template, the resolved parameter values and the per-step symbol tables); a worker
rebuilds the same plan from it with `JobPlan.from_json` (or a `PlanCache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePath
from typing import Any

from openjd.model import (
    DecodeValidationError,
    DocumentType,
    ParameterValue,
    ParameterValueType,
    create_job_with_symbol_tables,
    decode_environment_template,
    decode_job_template,
    document_string_to_object,
    preprocess_job_parameters,
)

from thresher.openjd.errors import (
    TemplateError,
    TemplateIssue,
    issues_from_decode_error,
    issues_from_lines,
)
from thresher.openjd.steps import StepPlan, plain_value, step_plan

__all__ = [
    "EXTENSIONS",
    "PLAN_FORMAT",
    "JobPlan",
    "ParsedTemplate",
    "PlanCache",
    "load_environment_template",
    "load_template",
    "plan_job",
]

EXTENSIONS = ("TASK_CHUNKING", "EXPR", "FEATURE_BUNDLE_1", "REDACTED_ENV_VARS")
"""The OpenJD extensions Thresher accepts (a template must still declare the ones it uses)."""

PLAN_FORMAT = "thresher.openjd.plan/1"

TemplateSource = str | bytes | Mapping[str, Any]
ParameterInput = str | int | float | bool | Sequence[Any]


@dataclass(frozen=True)
class ParsedTemplate:
    """A validated job template with its environment templates, as documents and as models."""

    document: Mapping[str, Any]
    env_documents: tuple[Mapping[str, Any], ...]
    model: Any = field(repr=False, compare=False)
    env_models: tuple[Any, ...] = field(repr=False, compare=False)

    @property
    def extensions(self) -> tuple[str, ...]:
        """Extensions declared by the job template and its environment templates, in order."""
        declared: list[str] = []
        for model in (self.model, *self.env_models):
            for extension in getattr(model, "extensions", None) or ():
                name = str(getattr(extension, "value", extension))
                if name not in declared:
                    declared.append(name)
        return tuple(declared)


def load_template(
    source: TemplateSource, *, env_templates: Sequence[TemplateSource] = ()
) -> ParsedTemplate:
    """Parse (YAML or JSON text, or a mapping) and validate a job template and environment
    templates with the extensions in `EXTENSIONS`.

    Raises TemplateError listing every issue of every document.
    """
    issues: list[TemplateIssue] = []
    document = _document(source, where="", issues=issues)
    model = None
    if document is not None:
        try:
            model = decode_job_template(template=document, supported_extensions=EXTENSIONS)
        except DecodeValidationError as exc:
            issues.extend(issues_from_decode_error(exc))
        except NotImplementedError as exc:
            issues.append(TemplateIssue("specificationVersion", str(exc)))
    env_documents: list[Mapping[str, Any]] = []
    env_models: list[Any] = []
    for i, env_source in enumerate(env_templates):
        decoded = _decode_environment(env_source, where=f"environments[{i}]", issues=issues)
        if decoded is not None:
            env_documents.append(decoded[0])
            env_models.append(decoded[1])
    if issues or document is None:
        raise TemplateError(issues)
    return ParsedTemplate(document, tuple(env_documents), model, tuple(env_models))


def load_environment_template(source: TemplateSource) -> Mapping[str, Any]:
    """Validate an environment template on its own; returns it as a JSON-able document.

    Raises TemplateError listing every issue.
    """
    issues: list[TemplateIssue] = []
    decoded = _decode_environment(source, where="", issues=issues)
    if decoded is None:
        raise TemplateError(issues)
    return decoded[0]


def plan_job(
    template: ParsedTemplate | TemplateSource,
    parameter_values: Mapping[str, ParameterInput] | None = None,
    *,
    env_templates: Sequence[TemplateSource] = (),
    template_dir: str | PurePath | None = None,
) -> JobPlan:
    """Validate a template with parameter values and make the job's plan.

    Values are merged with the template's (and environment templates') defaults and checked
    against their constraints. Submitted PATH values are kept exactly as submitted: a
    controller has no access to the submitter's disk. Relative PATH *defaults* are joined to
    `template_dir` when one is given (a pure path join, as `openjd run` does with the template's
    folder) and kept as written otherwise.

    Raises TemplateError listing every issue.
    """
    if isinstance(template, ParsedTemplate):
        if env_templates:
            raise ValueError("pass env_templates to load_template when giving a ParsedTemplate")
        parsed = template
    else:
        parsed = load_template(template, env_templates=env_templates)
    submitted = _input_values(parameter_values or {})
    # normpath, not resolve(): a pure join, and the library compares against it textually.
    job_template_dir = Path(os.path.normpath(template_dir)) if template_dir is not None else Path()
    try:
        values = preprocess_job_parameters(
            job_template=parsed.model,
            job_parameter_values=submitted,
            job_template_dir=job_template_dir,
            current_working_dir=Path(),
            allow_job_template_dir_walk_up=template_dir is None,
            environment_templates=list(parsed.env_models) or None,
        )
    except ValueError as exc:
        raise TemplateError(issues_from_lines(str(exc), location="parameters")) from None
    for name, value in values.items():
        # The library joins relative submitted paths to a working directory (and normalises them
        # on the way); Thresher has none to offer, so the submitted text stands.
        if value.type == ParameterValueType.PATH and isinstance(submitted.get(name), str):
            values[name] = ParameterValue(type=value.type, value=submitted[name])
    return _instantiate(parsed, values, stored_tables=None)


@dataclass(frozen=True)
class JobPlan:
    """A job made from a template: resolved name, parameter values and one StepPlan per step."""

    name: str
    parameter_values: Mapping[str, Mapping[str, Any]]
    steps: tuple[StepPlan, ...]
    template: ParsedTemplate = field(repr=False)
    job: Any = field(repr=False, compare=False)
    symbol_tables: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def env_templates(self) -> tuple[Mapping[str, Any], ...]:
        """The environment templates applied to the job, entered before its own environments."""
        return self.template.env_documents

    @property
    def extensions(self) -> tuple[str, ...]:
        return self.template.extensions

    def step(self, name: str, *, chunk_size: int | None = None) -> StepPlan:
        """The step called `name`, optionally re-chunked. Raises KeyError if there is none."""
        for step in self.steps:
            if step.name == name:
                if chunk_size is None or chunk_size == step.chunk_size:
                    return step
                return step.with_chunk_size(chunk_size)
        raise KeyError(name)

    def step_from_json(self, stored: Mapping[str, Any]) -> StepPlan:
        """Inverse of `StepPlan.to_json`."""
        return self.step(str(stored["step"]), chunk_size=stored.get("chunk_size"))

    def session_parameter_values(self) -> dict[str, Any]:
        """The job parameter values in the form openjd-sessions takes."""
        return {
            name: ParameterValue(type=ParameterValueType(value["type"]), value=value["value"])
            for name, value in self.parameter_values.items()
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable form that `from_json` turns back into the same plan."""
        return {
            "format": PLAN_FORMAT,
            "template": self.template.document,
            "env_templates": list(self.template.env_documents),
            "parameter_values": {
                name: dict(value) for name, value in self.parameter_values.items()
            },
            "symbol_tables": {
                name: json.loads(table.to_json_str()) for name, table in self.symbol_tables.items()
            },
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> JobPlan:
        """Rebuild a plan from `to_json()`: the template is validated again, the parameter values
        are used as stored, and the stored per-step symbol tables are kept."""
        if stored.get("format") != PLAN_FORMAT:
            raise ValueError(f"not a stored plan of format {PLAN_FORMAT!r}")
        parsed = load_template(stored["template"], env_templates=stored.get("env_templates", ()))
        values = {
            name: ParameterValue(type=ParameterValueType(value["type"]), value=value["value"])
            for name, value in stored["parameter_values"].items()
        }
        return _instantiate(parsed, values, stored_tables=stored.get("symbol_tables"))


class PlanCache:
    """Rebuilt plans by content, least recently used dropped first; safe across threads."""

    def __init__(self, max_entries: int = 32) -> None:
        self._max_entries = max_entries
        self._plans: OrderedDict[str, JobPlan] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, stored: Mapping[str, Any], *, key: str | None = None) -> JobPlan:
        """The plan for a stored form; `key` (a job id, say) saves hashing the document."""
        if key is None:
            text = json.dumps(stored, sort_keys=True, separators=(",", ":"))
            key = hashlib.sha256(text.encode()).hexdigest()
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = JobPlan.from_json(stored)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._max_entries:
                self._plans.popitem(last=False)
        return plan


def _document(
    source: TemplateSource, *, where: str, issues: list[TemplateIssue]
) -> dict[str, Any] | None:
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str):
        looks_json = source.lstrip().startswith("{")
        kinds = (DocumentType.JSON, DocumentType.YAML) if looks_json else (DocumentType.YAML,)
        document: Any = None
        for kind in kinds:
            try:
                document = document_string_to_object(document=source, document_type=kind)
                break
            except DecodeValidationError as exc:
                message = str(exc)
        if document is None:
            issues.append(TemplateIssue(where, message))
            return None
    else:
        document = source
    if not isinstance(document, Mapping):
        issues.append(TemplateIssue(where, f"expected a mapping, got {type(document).__name__}"))
        return None
    try:
        # What is validated is exactly what a controller stores.
        return dict(json.loads(json.dumps(document)))
    except (TypeError, ValueError) as exc:
        issues.append(TemplateIssue(where, f"the document is not representable as JSON: {exc}"))
        return None


def _decode_environment(
    source: TemplateSource, *, where: str, issues: list[TemplateIssue]
) -> tuple[dict[str, Any], Any] | None:
    document = _document(source, where=where, issues=issues)
    if document is None:
        return None
    try:
        model = decode_environment_template(template=document, supported_extensions=EXTENSIONS)
    except DecodeValidationError as exc:
        issues.extend(issues_from_decode_error(exc, prefix=where))
        return None
    except NotImplementedError as exc:
        issues.append(TemplateIssue(where or "specificationVersion", str(exc)))
        return None
    return document, model


def _input_values(values: Mapping[str, ParameterInput]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    issues: list[TemplateIssue] = []
    for name, value in values.items():
        if isinstance(value, bool):
            converted[name] = "true" if value else "false"
        elif isinstance(value, int | float | Decimal):
            converted[name] = str(value)
        elif isinstance(value, str | list | tuple):
            converted[name] = value if isinstance(value, str) else list(value)
        else:
            issues.append(
                TemplateIssue(f"parameters -> {name}", f"unsupported value {type(value).__name__}")
            )
    if issues:
        raise TemplateError(issues)
    return converted


def _instantiate(
    parsed: ParsedTemplate,
    values: dict[str, Any],
    *,
    stored_tables: Mapping[str, Any] | None,
) -> JobPlan:
    try:
        created = create_job_with_symbol_tables(
            job_template=parsed.model,
            job_parameter_values=values,
            environment_templates=list(parsed.env_models) or None,
        )
    except DecodeValidationError as exc:
        raise TemplateError(issues_from_decode_error(exc)) from None
    tables = dict(created.step_symbol_tables)
    if stored_tables is not None:
        from openjd.expr import SerializedSymbolTable

        tables = {
            name: SerializedSymbolTable.from_json_str(json.dumps(table))
            for name, table in stored_tables.items()
        }
    job = created.job
    return JobPlan(
        name=str(job.name),
        parameter_values={
            name: {"type": value.type.value, "value": plain_value(value.value)}
            for name, value in values.items()
        },
        steps=tuple(step_plan(step, index) for index, step in enumerate(job.steps)),
        template=parsed,
        job=job,
        symbol_tables=tables,
    )
