"""The tiny query grammar: `engine where type=compute and enabled=true`."""

from __future__ import annotations

from typing import Any

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.query import Condition, Query, parse_where

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
