"""The tiny query grammar: `engine where type=compute and enabled=true`."""

from __future__ import annotations

from typing import Any

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.query import Condition, parse_query, parse_where

ENGINE: dict[str, Any] = {
    "name": "Blender",
    "type": "render",
    "revision": 3,
    "enabled": True,
    "builtin": False,
    "filename_extensions": [".blend"],
    "max_bucketsize": None,
}


def test_a_query_names_an_entity_and_its_conditions() -> None:
    query = parse_query("Engine where type=compute and name != 'my engine' and revision>=2")
    assert query.entity == "engine"
    assert query.conditions == (
        Condition("type", "=", "compute"),
        Condition("name", "!=", "my engine"),
        Condition("revision", ">=", "2"),
    )
    assert parse_query("engines").conditions == ()


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
    assert parse_query(f"engine where {where}").matches(ENGINE) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "a query starts with what to find"),
        ("engine where", "needs at least one condition"),
        ("engine having type=x", "expected 'where'"),
        ("engine where type", "expected FIELD OP VALUE"),
        ("engine where =x", "expected FIELD OP VALUE"),
        ("engine where a=b c=d", "expected 'and'"),
        ("engine where a=b or c=d", "expected 'and'"),
        ("engine where 1a=b", "is not a field name"),
        ("engine where a='open", "cannot read the query"),
    ],
)
def test_malformed_queries_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_query(text)
    assert info.value.field == "query"


def test_a_where_clause_alone_names_its_own_field() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_where("type")
    assert info.value.field == "where"
    assert parse_where("") == ()
