"""Table tests for job filters: every form, every pool mode, errors, normalisation, reasons."""

from __future__ import annotations

from typing import Any

import pytest

from thresher.core.errors import InvalidInput
from thresher.core.filters import (
    FilterSet,
    OperatingSystem,
    PoolContext,
    WorkerFacts,
    dedicated_rank,
    parse_filters,
)

GIB = 1024**3


def worker(**overrides: Any) -> WorkerFacts:
    """A 16-core Linux box with 64 GiB and one GPU at site dupp, unless told otherwise."""
    facts: dict[str, Any] = {
        "hostname": "ren01",
        "site": "dupp",
        "os": "linux",
        "cores": 16,
        "ram_bytes": 64 * GIB,
        "gpus": 1,
        "pools": (),
        "labels": {},
    }
    facts.update(overrides)
    hostname, site = facts.pop("hostname"), facts.pop("site")
    return WorkerFacts.create(hostname, site, **facts)


MATCH_TABLE: list[tuple[str, dict[str, Any], bool]] = [
    # ram: units, operators, rounding to the filter's unit
    ("ram:>60GB", {"ram_bytes": 64 * GIB}, True),
    ("ram:>60GB", {"ram_bytes": 60 * GIB}, False),
    ("ram:>60GB", {"ram_bytes": int(62.8 * GIB)}, True),
    ("ram:<32g", {"ram_bytes": 16 * GIB}, True),
    ("ram:<32g", {"ram_bytes": 32 * GIB}, False),
    ("ram:=16GB", {"ram_bytes": 16 * GIB}, True),
    ("ram:=16GB", {"ram_bytes": int(15.6 * GIB)}, True),
    ("ram:=16GB", {"ram_bytes": 32 * GIB}, False),
    ("ram:>=64", {"ram_bytes": 64 * GIB}, True),
    ("ram:<=8", {"ram_bytes": 64 * GIB}, False),
    ("ram:>512m", {"ram_bytes": GIB}, True),
    ("ram:<512MB", {"ram_bytes": GIB}, False),
    ("ram:<1t", {"ram_bytes": 64 * GIB}, True),
    ("ram:>0.5TB", {"ram_bytes": 600 * GIB}, True),
    ("ram:>0.5TB", {"ram_bytes": 500 * GIB}, False),
    ("RAM:>60gb", {"ram_bytes": 64 * GIB}, True),
    ("ram: > 60 GiB", {"ram_bytes": 64 * GIB}, True),
    # cores and gpu
    ("cores:=12", {"cores": 12}, True),
    ("cores:=12", {"cores": 16}, False),
    ("cores:<8", {"cores": 8}, False),
    ("cores:<=8", {"cores": 8}, True),
    ("cores:>=8", {"cores": 16}, True),
    ("gpu:>0", {"gpus": 1}, True),
    ("gpu:>0", {"gpus": 0}, False),
    ("gpu:=0", {"gpus": 0}, True),
    # site: any of, none of, case-insensitive
    ("site:dupp+sthlm", {"site": "sthlm"}, True),
    ("site:dupp+sthlm", {"site": "london"}, False),
    ("site:DUPP", {"site": "dupp"}, True),
    ("site:dupp", {"site": "Dupp"}, True),
    ("site:-dupp", {"site": "dupp"}, False),
    ("site:-dupp", {"site": "sthlm"}, True),
    ("site:-dupp-sthlm", {"site": "sthlm"}, False),
    ("site:!us-east-1", {"site": "us-east-1"}, False),
    ("site:!us-east-1", {"site": "us-west-2"}, True),
    # hostname: lists, negation, site/host, globs, case
    ("hostname:ws01+ren01", {"hostname": "REN01"}, True),
    ("hostname:ws01+ren01", {"hostname": "ren02"}, False),
    ("hostname:-ws01-ws02", {"hostname": "ws02"}, False),
    ("hostname:-ws01-ws02", {"hostname": "ws03"}, True),
    ("hostname:dupp/pc01", {"hostname": "pc01", "site": "dupp"}, True),
    ("hostname:dupp/pc01", {"hostname": "pc01", "site": "sthlm"}, False),
    ("hostname:dupp/*", {"hostname": "anything", "site": "dupp"}, True),
    ("hostname:*render*", {"hostname": "big-Render-07"}, True),
    ("hostname:*render*", {"hostname": "ws01"}, False),
    ("hostname:-*render*", {"hostname": "render3"}, False),
    ("hostname:!render-01+render-02", {"hostname": "render-02"}, False),
    ("hostname:!render-01+render-02", {"hostname": "render-03"}, True),
    ("hostname:render-01", {"hostname": "render-01"}, True),
    # os
    ("os:linux", {"os": "linux"}, True),
    ("os:linux", {"os": "windows"}, False),
    ("os:-windows", {"os": "mac"}, True),
    ("os:-windows", {"os": "windows"}, False),
    ("os:mac+windows", {"os": "windows"}, True),
    ("os:darwin", {"os": "mac"}, True),
    ("os:Linux", {"os": "linux"}, True),
    # labels
    ("label:gpu=rtx", {"labels": {"gpu": "rtx"}}, True),
    ("label:gpu=gtx", {"labels": {"gpu": "rtx"}}, False),
    ("label:gpu=gtx+gpu=rtx", {"labels": {"gpu": "rtx"}}, True),
    ("label:gpu", {"labels": {"gpu": "rtx"}}, True),
    ("label:gpu", {"labels": {}}, False),
    ("label:-gpu=rtx", {"labels": {"gpu": "rtx"}}, False),
    ("label:-tier=old", {"labels": {"tier": "new"}}, True),
    ("label:!card=rtx-4090", {"labels": {"card": "rtx-4090"}}, False),
    ("label:card=rtx-4090", {"labels": {"card": "rtx-4090"}}, True),
    ("label:Gpu=rtx", {"labels": {"gpu": "rtx"}}, False),
    # pools (+, -, bare, @ never excludes)
    ("pool:+render", {"pools": {"render"}}, True),
    ("pool:+render", {"pools": {"office"}}, False),
    ("pool:+render", {"pools": set()}, False),
    ("pool:+render+sim", {"pools": {"sim", "office"}}, True),
    ("pool:render", {"pools": {"render"}}, True),
    ("pool:-office", {"pools": {"office", "render"}}, False),
    ("pool:-office", {"pools": {"render"}}, True),
    ("pool:-office-laptops", {"pools": {"laptops"}}, False),
    ("pool:!gpu-nodes", {"pools": {"gpu-nodes"}}, False),
    ("pool:@lighting", {"pools": {"lighting"}}, True),
    ("pool:@lighting", {"pools": {"office"}}, True),
    ("pool:~sim", {"pools": {"sim"}}, True),
    ("pool:~sim", {"pools": {"render"}}, False),
    # all clauses must hold
    ("ram:>32GB,cores:>=8,site:dupp,os:linux", {}, True),
    ("ram:>32GB,cores:>=32,site:dupp,os:linux", {}, False),
    ("ram:>32GB, gpu:>0 ,pool:-office", {"pools": {"render"}}, True),
    # no filters
    ("", {}, True),
    ("   ", {}, True),
]


@pytest.mark.parametrize(("text", "facts", "expected"), MATCH_TABLE)
def test_filter_matches(text: str, facts: dict[str, Any], expected: bool) -> None:
    # GIVEN a parsed filter and a worker WHEN matching THEN the table's answer comes back
    filters = parse_filters(text)
    w = worker(**facts)
    assert filters.matches(w) is expected
    # AND reasons are given exactly when it does not match
    assert bool(filters.reasons(w)) is not expected


EXCLUSIVE_TABLE: list[tuple[set[str], frozenset[str] | None, bool]] = [
    ({"sim"}, None, True),  # no context: no other active job
    ({"sim"}, frozenset(), True),
    ({"sim"}, frozenset({"render"}), True),
    ({"sim"}, frozenset({"sim"}), False),  # another active job includes sim
    ({"render"}, frozenset(), False),  # worker not in sim
    ({"sim", "render"}, frozenset({"render"}), True),
]


@pytest.mark.parametrize(("pools", "others", "expected"), EXCLUSIVE_TABLE)
def test_exclusive_pool_needs_no_other_job_including_it(
    pools: set[str], others: frozenset[str] | None, expected: bool
) -> None:
    context = None if others is None else PoolContext(included_by_others=others)
    assert parse_filters("pool:~sim").matches(worker(pools=pools), pool_context=context) is expected


def test_exclusive_pool_with_several_pools_needs_one_free() -> None:
    filters = parse_filters("pool:~a~b")
    w = worker(pools={"a", "b"})
    assert filters.matches(w, pool_context=PoolContext(frozenset({"a"})))
    assert not filters.matches(w, pool_context=PoolContext(frozenset({"a", "b"})))


ERROR_TABLE: list[tuple[str, str]] = [
    ("foo:1", "unknown key 'foo'"),
    ("ram", "expected key:value"),
    ("site:", "missing value"),
    ("ram:>1GB,,cores:>1", "empty filter"),
    ("ram:>1GB,", "empty filter"),
    ("ram:60GB", "bad operator"),
    ("ram:=>60GB", "bad number"),
    ("ram:>sixtyGB", "bad number 'sixtyGB'"),
    ("ram:>-1", "bad number"),
    ("ram:>60XB", "unknown unit 'XB'"),
    ("ram:>60kb", "unknown unit 'kb'"),
    ("cores:>1.5", "bad number '1.5'"),
    ("cores:>12GB", "bad number"),
    ("gpu:>many", "bad number 'many'"),
    ("os:beos", "unknown OS 'beos'"),
    ("site:dupp+", "bad site name ''"),
    ("site:dupp/x", "bad site name"),
    ("hostname:a/b/c", "bad hostname 'a/b/c'"),
    ("hostname:ws 01", "bad hostname"),
    ("label:=x", "bad label"),
    ("label:a=b=c", "bad label"),
    ("pool:+", "bad pool name ''"),
    ("pool:~a@b", "bad pool name 'a@b'"),
]


@pytest.mark.parametrize(("text", "problem"), ERROR_TABLE)
def test_bad_filter_is_invalid_input_naming_it(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filters(text, field="blocks[0].filters")
    assert problem in caught.value.message
    assert caught.value.field == "blocks[0].filters"


def test_error_names_the_offending_clause_not_the_whole_string() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filters("ram:>8GB, foo:bar, os:linux")
    assert caught.value.message.startswith("filter 'foo:bar':")
    assert caught.value.field == "filters"


NORMALISE_TABLE: list[tuple[str, str]] = [
    ("", ""),
    ("RAM:>60gb", "ram:>60GB"),
    ("ram:<32g", "ram:<32GB"),
    ("ram:>=16", "ram:>=16GB"),
    ("ram:>512m", "ram:>512MB"),
    ("ram:>0.5tib", "ram:>0.5TB"),
    ("cores:=12", "cores:=12"),
    ("Site:DUPP+Sthlm", "site:dupp+sthlm"),
    ("hostname:-WS01-ws02", "hostname:-ws01-ws02"),
    ("hostname:!render-01+render-02", "hostname:!render-01+render-02"),
    ("hostname:+ren01", "hostname:ren01"),
    ("os:darwin+win", "os:mac+windows"),
    ("label:!a=1+b", "label:-a=1+b"),
    ("pool:b+a", "pool:+a+b"),
    ("pool:!x+y", "pool:-x-y"),
    ("pool:-gpu-nodes", "pool:-gpu-nodes"),
    ("pool:!gpu-nodes", "pool:!gpu-nodes"),
    ("pool:@p, pool:~q", "pool:@p,pool:~q"),
]


@pytest.mark.parametrize(("text", "normalised"), NORMALISE_TABLE)
def test_text_is_normalised_and_parses_back(text: str, normalised: str) -> None:
    filters = parse_filters(text)
    assert filters.text == normalised
    assert parse_filters(filters.text) == filters


def test_pool_sets() -> None:
    filters = parse_filters("pool:+a, pool:-b, pool:~c~d, pool:@e, pool:@f")
    assert filters.dedicated_pools == {"e", "f"}
    assert filters.exclusive_pools == {"c", "d"}
    assert filters.included_pools == {"a", "c", "d", "e", "f"}
    assert parse_filters("").included_pools == frozenset()


DEDICATED_TABLE: list[tuple[str, set[str], int]] = [
    ("pool:@lighting", {"lighting"}, 0),
    ("pool:@lighting", {"lighting", "render"}, 0),
    ("pool:@lighting", {"render"}, 1),
    ("pool:@a@b", {"b"}, 0),
    ("pool:+lighting", {"lighting"}, 1),
    ("", {"lighting"}, 1),
]


@pytest.mark.parametrize(("text", "pools", "rank"), DEDICATED_TABLE)
def test_dedicated_rank(text: str, pools: set[str], rank: int) -> None:
    assert dedicated_rank(parse_filters(text), worker(pools=pools)) == rank


def test_reasons_say_why_each_failing_clause_fails() -> None:
    filters = parse_filters("ram:>60GB, site:sthlm, os:linux, pool:~sim")
    w = worker(ram_bytes=32 * GIB, site="dupp", pools={"sim"})
    reasons = filters.reasons(w, pool_context=PoolContext(frozenset({"sim"})))
    assert reasons == (
        "ram:>60GB: worker has ram 32GB",
        "site:sthlm: worker is dupp",
        "pool:~sim: another active job includes sim",
    )


def test_describe() -> None:
    assert parse_filters("").describe() == "no filters"
    assert parse_filters("os:linux, gpu:>0").describe() == "os:linux,gpu:>0"
    assert FilterSet() == parse_filters("")


def test_worker_facts_are_hashable_and_canonical() -> None:
    a = worker(labels={"a": "1", "b": "2"}, pools=["x", "y"])
    b = worker(labels={"b": "2", "a": "1"}, pools={"y", "x"})
    assert a == b
    assert hash(a) == hash(b)
    assert a.os is OperatingSystem.LINUX
    assert a.label("a") == "1"
    assert a.label("missing") is None


def test_worker_facts_refuse_unknown_os() -> None:
    with pytest.raises(ValueError, match="unknown OS"):
        worker(os="beos")
