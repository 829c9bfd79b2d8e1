"""What every request body shares: unknown fields are refused, no text holds a NUL byte, and
every number and string keeps within a bound, so that nothing a request carries overflows a
database column, a timer or the controller's memory. Each refusal is a 422 naming the field.

The bounds here are structural (what the store, the worker and the operating system can hold);
limits that are a farm's policy are `ControllerSettings` fields, checked when a job compiles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import SchemaValidator, ValidationError

#: Ids and byte counts: a 64-bit column (PostgreSQL BIGINT, SQLite INTEGER).
MAX_INT64 = 2**63 - 1
#: Counts and small numbers kept in a 32-bit INTEGER column on PostgreSQL.
MAX_INT32 = 2**31 - 1
#: Task run times: the worker's timers count milliseconds in a C int (2^31 ms is 24.8 days),
#: so a longer `max_runtime_s` would fail every task. 23 days and a bit.
MAX_RUNTIME_S = 2_000_000.0
#: Other durations (forgiving an error host): ten years.
MAX_DURATION_S = 10 * 365 * 86_400.0
MAX_NAME = 300
MAX_TEXT = 10_000
#: Linux's PATH_MAX.
MAX_PATH = 4096
#: Linux's MAX_ARG_STRLEN (one argument or one NAME=value of the environment), less its NUL.
MAX_ARG = 128 * 1024 - 1
MAX_ARGS = 10_000
#: argv and environment together must fit the kernel's ARG_MAX (2 MiB by default).
MAX_ARGV_BYTES = 1024 * 1024
MAX_ENV_ENTRIES = 1000
MAX_ENV_BYTES = 512 * 1024
MAX_LIST = 10_000
#: Nesting of the free-form JSON a request may carry (engine parameters, templates).
MAX_DEPTH = 32


def _utf8_size(items: list[str]) -> int:
    return sum(len(item.encode("utf-8", "surrogatepass")) + 1 for item in items)


def _argv_fits(argv: list[str]) -> list[str]:
    if _utf8_size(argv) > MAX_ARGV_BYTES:
        raise ValueError(f"the command is over {MAX_ARGV_BYTES} bytes in all")
    return argv


def _env_fits(env: dict[str, str]) -> dict[str, str]:
    if _utf8_size([f"{k}={v}" for k, v in env.items()]) > MAX_ENV_BYTES:
        raise ValueError(f"the environment is over {MAX_ENV_BYTES} bytes in all")
    return env


Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
ShortText = Annotated[str, StringConstraints(max_length=MAX_NAME)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
PathText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH)]
Arg = Annotated[str, StringConstraints(max_length=MAX_ARG)]
Argv = Annotated[list[Arg], Field(max_length=MAX_ARGS), AfterValidator(_argv_fits)]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^=]+$")]
Env = Annotated[dict[EnvName, Arg], Field(max_length=MAX_ENV_ENTRIES), AfterValidator(_env_fits)]
JobId = Annotated[int, Field(ge=1, le=MAX_INT64)]
Count = Annotated[int, Field(ge=0, le=MAX_INT32)]
RunSeconds = Annotated[float, Field(gt=0, le=MAX_RUNTIME_S)]
Seconds = Annotated[float, Field(gt=0, le=MAX_DURATION_S)]
JsonObject = Annotated[dict[str, Any], Field(max_length=MAX_LIST)]


def refuse_nul(value: object, *, depth: int = 0) -> None:
    """Raise ValueError when `value` (text, or JSON-like lists and mappings of it) holds a NUL
    byte or a lone surrogate (neither can be stored as text), a non-finite number, or nests
    deeper than MAX_DEPTH. Models are checked by their own validators and skipped here."""
    if isinstance(value, str):
        _refuse_unstorable_text(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("numbers must be finite")
    elif isinstance(value, BaseModel):
        return
    elif depth >= MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            refuse_nul(key, depth=depth + 1)
            refuse_nul(item, depth=depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item, depth=depth + 1)


def _refuse_unstorable_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("NUL bytes (\\u0000) are not allowed")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from None


class Strict(BaseModel):
    """A request body: unknown fields are refused (422 naming them), never ignored; numbers are
    finite; no text holds a NUL byte (a PostgreSQL text value cannot), except in the fields
    named by `nul_allowed` (a task's output, whose NULs the store replaces)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    nul_allowed: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name not in cls.nul_allowed:
            refuse_nul(value)
        return value


M = TypeVar("M", bound=BaseModel)


class JsonBody(Generic[M]):
    """Validates a `Strict` model from a request's JSON bytes as `model_validate_json` does,
    without running its text checks where the bytes show they cannot refuse anything.

    Those checks (`Strict._no_nul`, a Python call for every field of every model) cost three
    quarters of a small poll's validation (32 of 41 us). In JSON, a NUL or a lone surrogate can
    only come from a `\\u` escape: raw control characters and invalid UTF-8 are invalid JSON, so
    a body without `\\u` holds neither. Its numbers need no walk either: a `Strict` model's
    floats are refused infinite or NaN where they are parsed (`allow_inf_nan=False`), and only
    free-form JSON (an `Any`, walked by `refuse_nul` for its numbers and depth) escapes that, so
    a model holding any is always checked in full. A body without `\\u` is validated by the
    model's own schema less those checks (the same classes, the same instances); any other
    body, and every refusal, by the model itself (the same errors).
    """

    __slots__ = ("_fast", "model")

    def __init__(self, model: type[M]) -> None:
        self.model = model
        schema = model.__pydantic_core_schema__
        self._fast: SchemaValidator | None = None
        if not _holds_any(schema):
            lean = _without_text_checks(schema)
            # pydantic-core reuses a complete model's own validator for its schema (checks
            # and all): the models are marked incomplete while this one is built.
            models = _models_in(lean)
            for cls in models:
                cls.__pydantic_complete__ = False
            try:
                self._fast = SchemaValidator(lean, lean.get("config"))
            finally:
                for cls in models:
                    cls.__pydantic_complete__ = True

    def parse(self, body: bytes) -> M:
        """The model of `body`; pydantic's ValidationError as `model_validate_json` raises it."""
        if self._fast is not None and b"\\u" not in body:
            try:
                parsed: M = self._fast.validate_json(body)
                return parsed
            except ValidationError:
                pass  # refused: the model's own validation says how, with its own title
        return self.model.model_validate_json(body)


def _without_text_checks(schema: Any) -> Any:
    """A copy of a core schema without the `Strict._no_nul` steps (their inner schemas kept)."""
    if isinstance(schema, dict):
        if schema.get("type") == "function-after":
            function = schema["function"].get("function")
            if getattr(function, "__func__", None) is _NO_NUL:
                return _without_text_checks(schema["schema"])
        return {key: _without_text_checks(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_without_text_checks(item) for item in schema]
    return schema


def _models_in(schema: Any) -> set[type[BaseModel]]:
    """The model classes a core schema builds."""
    if isinstance(schema, dict):
        found = {schema["cls"]} if schema.get("type") == "model" else set()
        return found.union(*(_models_in(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_models_in(item) for item in schema))
    return set()


def _holds_any(schema: Any) -> bool:
    """Whether a core schema accepts free-form JSON somewhere (an `any` schema)."""
    if isinstance(schema, dict):
        return schema.get("type") == "any" or any(_holds_any(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_holds_any(item) for item in schema)
    return False


_NO_NUL = Strict._no_nul.__func__  # type: ignore[attr-defined]


class ProblemOut(BaseModel):
    """One problem of a request refused for several."""

    field: str | None = Field(default=None, description="the request field at fault")
    message: str


class ErrorOut(BaseModel):
    """Every error the controller answers (4xx, 5xx) has this body."""

    error: str = Field(description="a short code: invalid, not_found, conflict, forbidden, ...")
    message: str = Field(description="what went wrong, for a person")
    field: str | None = Field(default=None, description="the request field at fault, if one")
    errors: list[ProblemOut] = Field(
        default_factory=list, description="every problem, when several were found at once"
    )
