"""The tiny query grammar: `engine where type=compute and enabled=true`."""

from __future__ import annotations

import re
from typing import Any

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.query import Condition, Query, parse_query, parse_where

ENGINE: dict[str, Any] = {
    "name": "Blender",
    "type": "render",
    "revision": 3,
    "enabled": True,
    "builtin": False,
    "filename_extensions": [".blend"],
    "max_bucketsize": None,
}


def test_a_where_clause_is_its_conditions() -> None:
    assert parse_where("type=compute and name != 'my engine' and revision>=2") == (
        Condition("type", "=", "compute"),
        Condition("name", "!=", "my engine"),
        Condition("revision", ">=", "2"),
    )


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ("type=render", True),
        ("type=RENDER", True),  # text compares in any case
        ("type!=render", False),
        ("name~lend", True),
        ("name~maya", False),
        ("revision=3", True),
        ("revision>2 and revision<=3", True),
        ("revision<3", False),
        ("revision=abc", False),
        ("enabled=true", True),
        ("enabled=yes", True),
        ("builtin=1", False),
        ("enabled>1", False),
        ("filename_extensions=.blend", True),  # a list matches when an item does
        ("filename_extensions!=.blend", False),
        ("filename_extensions=.ma", False),
        ("max_bucketsize=null", True),
        ("max_bucketsize!=null", False),
        ("max_bucketsize>3", False),
        ('type="render" and enabled=true and revision>=3', True),
    ],
)
def test_conditions_match_records(where: str, matches: bool) -> None:
    assert Query("engine", parse_where(where)).matches(ENGINE) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type", "expected FIELD OP VALUE"),
        ("=x", "expected FIELD OP VALUE"),
        ("a=b c=d", "expected 'and'"),
        ("a=b or c=d", "expected 'and'"),
        ("1a=b", "is not a field name"),
        ("a='open", "cannot read the query"),
    ],
)
def test_malformed_queries_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_where(text, field="query")
    assert info.value.field == "query"


def test_a_where_clause_alone_names_its_own_field() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_where("type")
    assert info.value.field == "where"
    assert parse_where("") == ()


@pytest.mark.parametrize(
    ("text", "entity", "conditions"),
    [
        ("job where status=running", "job", (Condition("status", "=", "running"),)),
        ("jobs", "job", ()),
        ("TASK where job=12 and status!=done", "task", None),
        ("workers where site=hq", "worker", (Condition("site", "=", "hq"),)),
    ],
)
def test_a_query_is_an_entity_and_its_conditions(
    text: str, entity: str, conditions: tuple[Condition, ...] | None
) -> None:
    query = parse_query(text, entities=("job", "task", "worker", "engine"))
    assert query.entity == entity
    if conditions is not None:
        assert query.conditions == conditions


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "starts with what to find"),
        ("shots where a=b", "starts with what to find (job, task), not 'shots'"),
        ("job status=running", "expected 'where' after 'job'"),
        ("job where", "'where' needs at least one condition"),
        ("job where status", "expected FIELD OP VALUE"),
        ("job where " + "a=b and " * 300 + "a=b", "longer than 2000"),
    ],
)
def test_a_malformed_query_is_refused_naming_q(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as info:
        parse_query(text, entities=("job", "task"))
    assert info.value.field == "q"
