"""`convert.built`: a response model made of values of its types, as `model_construct` makes it
(the poll's answer and its assignments are built so, once per poll)."""

from __future__ import annotations

from typing import Any

from thresher.controller.convert import assignment_out, built
from thresher.core.model import Assignment
from thresher.schemas import api

ASSIGNMENT = Assignment(
    attempt_id=7,
    token="t0k3n",
    job_id=3,
    block_index=1,
    task_index=12,
    frames=(24, 25),
    kind="command",
    payload={"command": ["render", "é"], "n": 1.5},
    env={"A": "b"},
    cwd="/tmp",
    max_runtime_s=60.0,
    lane=0,
    engine="blender",
    engine_revision=2,
    engine_hash="ab" * 32,
)


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    assert a == b
    assert repr(a) == repr(b)
    assert a.model_fields_set == b.model_fields_set  # type: ignore[attr-defined]
    assert a.model_dump_json() == b.model_dump_json()  # type: ignore[attr-defined]


def test_an_assignment_is_what_model_construct_makes() -> None:
    out = assignment_out(ASSIGNMENT)
    _same(
        out,
        api.AssignmentOut.model_construct(
            attempt_id=7,
            token="t0k3n",
            job_id=3,
            block=1,
            index=12,
            frames=[24, 25],
            kind="command",
            payload={"command": ["render", "é"], "n": 1.5},
            env={"A": "b"},
            cwd="/tmp",
            max_runtime_s=60.0,
            engine="blender",
            engine_revision=2,
            engine_hash="ab" * 32,
            lane=0,
        ),
    )
    assert out.payload is not ASSIGNMENT.payload  # a copy: the answer owns what it holds


def test_a_poll_answer_is_what_validation_makes() -> None:
    values: dict[str, Any] = {
        "assignments": [assignment_out(ASSIGNMENT)],
        "stop": [4, 5],
        "stale": [],
        "heartbeat_s": 10.0,
        "lease_s": 60.0,
        "enabled": True,
        "nimby": "paused",
    }
    _same(built(api.PollOut, dict(values)), api.PollOut(**values))
    answer = built(api.PollOut, dict(values))
    assert api.PollOut.model_validate_json(answer.model_dump_json()) == answer
    answer.stop.append(6)  # still a model: its fields can be changed and copied
    assert answer.model_copy(update={"enabled": False}).stop == [4, 5, 6]
