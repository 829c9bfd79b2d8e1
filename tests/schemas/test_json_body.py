"""`JsonBody`: a worker's body validated without its text checks only where its bytes show
those checks cannot refuse it; the same instances and the same refusals as the model's own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from thresher.schemas import api, base
from thresher.schemas.base import JsonBody, Strict

FINISH = b'{"attempt_id":12345,"token":"abc","status":"succeeded","exit_code":0,"duration_s":0.001}'
POLL = b'{"lanes":[0],"ahead_lanes":[],"wait_s":2.0,"finished":[' + FINISH + b"]}"


def _errors(call: Any, body: bytes) -> str:
    """The errors as answered (no context, no URL), as text: a NaN input equals itself."""
    with pytest.raises(ValidationError) as caught:
        call(body)
    return repr(caught.value.errors(include_url=False, include_context=False))


def test_a_poll_is_the_models_own_instance() -> None:
    parsed = JsonBody(api.PollIn).parse(POLL)
    assert type(parsed) is api.PollIn
    assert type(parsed.finished[0]) is api.FinishIn
    assert parsed == api.PollIn.model_validate_json(POLL)


def test_a_body_without_escapes_skips_the_text_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    body = JsonBody(api.PollIn)  # built before the count: pydantic-core keeps the function
    checked: list[object] = []
    monkeypatch.setattr(base, "refuse_nul", checked.append)
    body.parse(POLL)
    assert checked == []
    api.PollIn.model_validate_json(POLL)  # the model itself checks every field
    assert checked


@pytest.mark.parametrize(
    "body",
    [
        b'{"finished":[{"attempt_id":1,"token":"a\\u0000","status":"failed"}]}',
        b'{"finished":[{"attempt_id":1,"token":"a\\ud800","status":"failed"}]}',
        b'{"running":[{"attempt_id":1,"token":"\\u0000"}]}',
        b'{"finished":[{"attempt_id":1,"token":"a\x00","status":"failed"}]}',  # raw: not JSON
        b'{"finished":[{"attempt_id":1,"token":"a\xed\xa0\x80","status":"failed"}]}',
        b'{"sample":{"cpu":1e400}}',
        b'{"finished":[{"attempt_id":1,"token":"a","status":"failed","duration_s":1e999}]}',
        b'{"output":[{"attempt_id":1,"token":"a","progress":NaN}]}',
        b'{"lanes":[-1],"extra":1}',
    ],
)
def test_refusals_are_the_models_own(body: bytes) -> None:
    assert _errors(JsonBody(api.PollIn).parse, body) == _errors(
        api.PollIn.model_validate_json, body
    )


def test_text_a_task_wrote_keeps_its_nul_bytes() -> None:
    body = b'{"output":[{"attempt_id":1,"token":"a","lines":[["stdout","x\\u0000y"]]}]}'
    parsed = JsonBody(api.ReportIn).parse(body)
    assert parsed.output[0].lines == [("stdout", "x\x00y")]


class _FreeForm(Strict):
    parameters: dict[str, Any] = Field(default_factory=dict)


def test_a_model_with_free_form_json_is_always_checked_in_full() -> None:
    deep = b'{"parameters":{"a":' + b"[" * 40 + b"1" + b"]" * 40 + b"}}"
    assert _errors(JsonBody(_FreeForm).parse, deep) == _errors(_FreeForm.model_validate_json, deep)
    huge = b'{"parameters":{"a":1e400}}'
    assert _errors(JsonBody(_FreeForm).parse, huge)


class _Plain(BaseModel):
    name: str


def test_models_stay_complete_after_building() -> None:
    JsonBody(api.PollIn)
    JsonBody(_Plain)
    assert api.PollIn.__pydantic_complete__
    assert api.FinishIn.__pydantic_complete__
    assert _Plain.model_validate_json(b'{"name":"x"}').name == "x"
