"""A tiny query grammar for finding things by their fields: ``engine where type=compute``.

::

    query      := ENTITY [ "where" condition { "and" condition } ]
    condition  := FIELD OP VALUE
    OP         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"      (~: contains, any case)
    VALUE      := a word, or text in single or double quotes

Words are case-insensitive keywords (``where``, ``and``); field names are as the entity's
records name them. A value compares as a number when both sides are numbers, as a boolean
when the field is one (``true``/``false``/``yes``/``no``/``1``/``0``), as ``null`` against a
missing value, and as text otherwise; a field holding a list matches when any item does
(``filename_extensions=.blend``). Everything here is pure: parse once, match records.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thresher.core.errors import InvalidInput

OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~")
_TOKEN = re.compile(
    r"""\s*(?:(?P<quoted>'[^']*'|"[^"]*")|(?P<op><=|>=|!=|=|<|>|~)|(?P<word>[^\s=<>!~'"]+))"""
)
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str


@dataclass(frozen=True)
class Query:
    """A parsed query: what to find and the conditions that must all hold."""

    entity: str
    conditions: tuple[Condition, ...] = ()

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` satisfies every condition."""
        return all(_holds(c, record) for c in self.conditions)

    def fields(self) -> set[str]:
        return {c.field for c in self.conditions}


def _tokens(text: str, field: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidInput(f"cannot read the query at {text[pos:]!r}", field=field)
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "quoted":
            value = value[1:-1]
        out.append((kind, value))
        pos = match.end()
    return out


def parse_where(text: str, *, field: str = "where") -> tuple[Condition, ...]:
    """The conditions of a where clause (``type=compute and enabled=true``); ``""`` is none."""
    tokens = _tokens(text, field)
    conditions: list[Condition] = []
    i = 0
    while i < len(tokens):
        if conditions:
            kind, word = tokens[i]
            if kind != "word" or word.lower() != "and":
                raise InvalidInput(f"expected 'and' before {word!r}", field=field)
            i += 1
        part = tokens[i : i + 3]
        if len(part) < 3 or part[0][0] != "word" or part[1][0] != "op" or part[2][0] == "op":
            shown = " ".join(v for _, v in tokens[i : i + 3]) or "the end"
            raise InvalidInput(
                f"expected FIELD OP VALUE (OP one of {' '.join(OPERATORS)}) at {shown!r}",
                field=field,
            )
        name = part[0][1]
        if not _FIELD.match(name):
            raise InvalidInput(f"{name!r} is not a field name", field=field)
        conditions.append(Condition(name, part[1][1], part[2][1]))
        i += 3
    return tuple(conditions)


def parse_query(
    text: str, *, entities: Sequence[str], field: str = "q", max_length: int = 2000
) -> Query:
    """A whole query (``job where status=running``): the entity, one of ``entities`` (a
    plural names it too: ``jobs``), then an optional where clause."""
    if len(text) > max_length:
        raise InvalidInput(f"the query is longer than {max_length} characters", field=field)
    head, _, rest = text.strip().partition(" ")
    entity = head.lower()
    if entity not in entities and entity.endswith("s") and entity[:-1] in entities:
        entity = entity[:-1]
    if entity not in entities:
        shown = head or "nothing"
        raise InvalidInput(
            f"a query starts with what to find ({', '.join(entities)}), not {shown!r}",
            field=field,
        )
    rest = rest.strip()
    keyword, _, where = rest.partition(" ")
    if rest and keyword.lower() != "where":
        raise InvalidInput(f"expected 'where' after {head!r}, got {keyword!r}", field=field)
    if rest and not where.strip():
        raise InvalidInput("'where' needs at least one condition", field=field)
    return Query(entity, parse_where(where, field=field))


def check_fields(conditions: Sequence[Condition], known: Sequence[str], *, field: str) -> None:
    """Refuse conditions on fields the entity does not have, naming the known ones."""
    for condition in conditions:
        if condition.field not in known:
            raise InvalidInput(
                f"unknown field {condition.field!r}; known: {', '.join(sorted(known))}",
                field=field,
            )


def _holds(condition: Condition, record: Mapping[str, Any]) -> bool:
    actual = record.get(condition.field)
    if isinstance(actual, list | tuple | set | frozenset):
        if condition.op == "!=":
            return all(_compare(item, "=", condition.value) is False for item in actual)
        return any(_compare(item, condition.op, condition.value) for item in actual)
    return _compare(actual, condition.op, condition.value)


def _compare(actual: Any, op: str, text: str) -> bool:
    if actual is None:
        is_null = text.lower() in ("null", "none", "")
        return is_null if op == "=" else (not is_null) if op == "!=" else False
    if isinstance(actual, bool):
        wanted = text.lower()
        if wanted not in _TRUE | _FALSE or op not in ("=", "!="):
            return False
        return (actual == (wanted in _TRUE)) == (op == "=")
    if op == "~":
        return text.lower() in str(actual).lower()
    if isinstance(actual, int | float):
        try:
            return _ORDER[op](float(actual), float(text))
        except ValueError:
            return op == "!="
    return _ORDER[op](str(actual).lower(), text.lower())


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
