"""Job filters (accsyn's grammar): which workers a job may run on.

A filter string is a comma-separated list of clauses, all of which must hold::

    ram:>60GB, cores:>=8, site:dupp+sthlm, hostname:-ws01-ws02, os:linux, gpu:>0,
    label:gpu=rtx4090, pool:+render, pool:-office, pool:~sim, pool:@lighting

Numbers (`ram`, `cores`, `gpu`) take one of `<`, `<=`, `=`, `>=`, `>`. RAM units are `m`/`MB`/`MiB`,
`g`/`GB`/`GiB` and `t`/`TB`/`TiB`, case-insensitive and always binary (1 GB = 1024**3 bytes, as
operating systems report memory); a bare number is GB. Machines report a little less than their
nominal size, so a worker's RAM is rounded to the filter's unit (and to as many decimals as the
filter writes) before comparing: a machine reporting 62.8 GiB satisfies `ram:=63GB` and `ram:>60GB`.

Name lists (`site`, `hostname`, `os`): `a+b` means any of a, b; `-a-b` means none of a, b. Since
`-` also separates, Thresher adds `!a+b` (none of, joined by `+`) for names that hold a `-`
(`hostname:!render-01+render-02`). Hostnames may be globs (`*render*`) and may name a site
(`dupp/pc01`). Sites and hostnames match case-insensitively; pools and labels are exact.

Labels: `label:key=value` (any of, joined by `+`), `label:key` (the key is set), `label:-key=value`
or `label:!key=value` (none of). Labels are split on `+` only, since values often hold `-`.

Pools: `pool:+p` only on p's workers; `pool:-p` (or `pool:!p`, joined by `+`) never on them;
`pool:~p` only on p's workers, and only while no other active job includes p (see `PoolContext`);
`pool:@p` dedicated: p's workers serve this job before any other whatever its priority, and the job
may also use other workers, so `@` never excludes a worker by itself (see `dedicated_rank`). A job
"includes" the pools it names with `+`, `~` and `@`. A bare name (`pool:p`) means `+`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from thresher.core.errors import InvalidInput


class OperatingSystem(StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"
    MAC = "mac"

    @classmethod
    def parse(cls, text: str) -> OperatingSystem:
        """The OS named by `text` (case-insensitive; also `darwin`, `macos`, `osx`, `win`)."""
        name = _OS_ALIASES.get(text.strip().lower(), text.strip().lower())
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown OS {text!r} (expected linux, windows or mac)") from None


_OS_ALIASES = {"darwin": "mac", "macos": "mac", "osx": "mac", "win": "windows", "win32": "windows"}


@dataclass(frozen=True)
class WorkerFacts:
    """What filters look at on a worker. Hashable: pools are a frozenset, labels sorted pairs."""

    hostname: str
    site: str
    os: OperatingSystem
    cores: int
    ram_bytes: int
    gpus: int = 0
    pools: frozenset[str] = frozenset()
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Canonical forms keep equal facts equal (and hashable) however they were passed in.
        object.__setattr__(self, "os", OperatingSystem.parse(self.os))
        object.__setattr__(self, "pools", frozenset(self.pools))
        object.__setattr__(self, "labels", tuple(sorted(dict(self.labels).items())))

    @classmethod
    def create(
        cls,
        hostname: str,
        site: str,
        *,
        os: OperatingSystem | str,
        cores: int,
        ram_bytes: int,
        gpus: int = 0,
        pools: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
    ) -> WorkerFacts:
        """Build facts from loose types (an OS name, any iterable of pools, a label dict)."""
        return cls(
            hostname=hostname,
            site=site,
            os=OperatingSystem.parse(os),
            cores=cores,
            ram_bytes=ram_bytes,
            gpus=gpus,
            pools=frozenset(pools),
            labels=tuple((labels or {}).items()),
        )

    def label(self, key: str) -> str | None:
        """The value of label `key`, or None when the worker does not carry it."""
        return dict(self.labels).get(key)


@dataclass(frozen=True)
class PoolContext:
    """What `pool:~p` needs to know: the pools included by the OTHER active jobs."""

    included_by_others: frozenset[str] = frozenset()


class FilterKey(StrEnum):
    RAM = "ram"
    CORES = "cores"
    GPU = "gpu"
    SITE = "site"
    HOSTNAME = "hostname"
    OS = "os"
    LABEL = "label"
    POOL = "pool"


class Comparison(StrEnum):
    # Two-character operators first: the parser takes the first member the value starts with.
    LE = "<="
    GE = ">="
    LT = "<"
    GT = ">"
    EQ = "="

    def holds(self, left: float, right: float) -> bool:
        """Whether `left <op> right`."""
        return _COMPARE[self](left, right)


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}


class PoolMode(StrEnum):
    ONLY = "+"
    NEVER = "-"
    EXCLUSIVE = "~"
    DEDICATED = "@"


_GIB = 1024**3
_RAM_UNITS: dict[str, tuple[str, int]] = {
    **dict.fromkeys(("m", "mb", "mib"), ("MB", 1024**2)),
    **dict.fromkeys(("", "g", "gb", "gib"), ("GB", _GIB)),
    **dict.fromkeys(("t", "tb", "tib"), ("TB", 1024**4)),
}
_NUMBER = re.compile(r"(?P<number>[0-9]+(?:\.(?P<decimals>[0-9]+))?)\s*(?P<unit>[A-Za-z]*)")
_NAME = re.compile(r"[A-Za-z0-9_.*?\[\]!/-]+")
_POOL = re.compile(r"[A-Za-z0-9_.-]+")
_LABEL = re.compile(r"(?P<key>[A-Za-z0-9_.-]+)(?:=(?P<value>[^,+=]*))?")


def _fail(clause: str, problem: str, field_name: str) -> InvalidInput:
    return InvalidInput(f"filter {clause!r}: {problem}", field=field_name)


@dataclass(frozen=True)
class NumberFilter:
    """`ram`, `cores` or `gpu` compared with a number; RAM rounded to the filter's unit first."""

    key: FilterKey
    op: Comparison
    value: float
    unit: str = ""
    unit_bytes: int = 1
    decimals: int = 0

    @property
    def text(self) -> str:
        number = f"{self.value:.{self.decimals}f}"
        return f"{self.key}:{self.op}{number}{self.unit}"

    def worker_value(self, worker: WorkerFacts) -> float:
        if self.key is FilterKey.RAM:
            return round(worker.ram_bytes / self.unit_bytes, self.decimals)
        return worker.cores if self.key is FilterKey.CORES else worker.gpus

    def matches(self, worker: WorkerFacts, context: PoolContext) -> bool:
        return self.op.holds(self.worker_value(worker), self.value)

    def reason(self, worker: WorkerFacts, context: PoolContext) -> str:
        shown = f"{self.worker_value(worker):.{self.decimals}f}{self.unit}"
        return f"{self.text}: worker has {self.key} {shown}"


@dataclass(frozen=True)
class NameFilter:
    """`site`, `hostname` or `os`: the worker's value is (not) one of the names."""

    key: FilterKey
    names: tuple[str, ...]
    negated: bool = False

    @property
    def text(self) -> str:
        return f"{self.key}:" + _join_names(self.names, negated=self.negated)

    def _hit(self, name: str, worker: WorkerFacts) -> bool:
        if self.key is FilterKey.OS:
            return name == worker.os
        if self.key is FilterKey.SITE:
            return fnmatchcase(worker.site.lower(), name)
        site, _, host = name.rpartition("/")
        if site and not fnmatchcase(worker.site.lower(), site):
            return False
        return fnmatchcase(worker.hostname.lower(), host)

    def matches(self, worker: WorkerFacts, context: PoolContext) -> bool:
        return any(self._hit(n, worker) for n in self.names) != self.negated

    def reason(self, worker: WorkerFacts, context: PoolContext) -> str:
        value = {FilterKey.OS: worker.os, FilterKey.SITE: worker.site}.get(self.key)
        shown = value if value is not None else f"{worker.site}/{worker.hostname}"
        return f"{self.text}: worker is {shown}"


@dataclass(frozen=True)
class LabelFilter:
    """`label:k=v+k2` (any of) or `label:-k=v` (none of); a bare key means "the key is set"."""

    pairs: tuple[tuple[str, str | None], ...]
    negated: bool = False

    @property
    def text(self) -> str:
        items = "+".join(k if v is None else f"{k}={v}" for k, v in self.pairs)
        return "label:" + ("-" if self.negated else "") + items

    def _hit(self, key: str, value: str | None, worker: WorkerFacts) -> bool:
        have = worker.label(key)
        return have is not None and (value is None or have == value)

    def matches(self, worker: WorkerFacts, context: PoolContext) -> bool:
        return any(self._hit(k, v, worker) for k, v in self.pairs) != self.negated

    def reason(self, worker: WorkerFacts, context: PoolContext) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in worker.labels) or "none"
        return f"{self.text}: worker labels are {shown}"


@dataclass(frozen=True)
class PoolFilter:
    """`pool:+a+b`, `pool:-a-b`, `pool:~a`, `pool:@a` (see the module docstring)."""

    mode: PoolMode
    pools: frozenset[str]

    @property
    def text(self) -> str:
        if self.mode is PoolMode.NEVER:
            return "pool:" + _join_names(sorted(self.pools), negated=True)
        return "pool:" + "".join(self.mode + p for p in sorted(self.pools))

    def matches(self, worker: WorkerFacts, context: PoolContext) -> bool:
        if self.mode is PoolMode.DEDICATED:
            return True
        if self.mode is PoolMode.NEVER:
            return not worker.pools & self.pools
        if self.mode is PoolMode.ONLY:
            return bool(worker.pools & self.pools)
        return bool(worker.pools & self.pools - context.included_by_others)

    def reason(self, worker: WorkerFacts, context: PoolContext) -> str:
        shown = ", ".join(sorted(worker.pools)) or "no pool"
        taken = self.pools & context.included_by_others
        if self.mode is PoolMode.EXCLUSIVE and taken and worker.pools & self.pools:
            return f"{self.text}: another active job includes {', '.join(sorted(taken))}"
        return f"{self.text}: worker is in {shown}"


Clause = NumberFilter | NameFilter | LabelFilter | PoolFilter


@dataclass(frozen=True)
class FilterSet:
    """Parsed filters; a worker matches when every clause holds. Build it with `parse_filters`."""

    clauses: tuple[Clause, ...] = ()

    @property
    def text(self) -> str:
        """The normalised filter string (parses back to an equal FilterSet)."""
        return ",".join(c.text for c in self.clauses)

    def _pools(self, *modes: PoolMode) -> frozenset[str]:
        found = (c.pools for c in self.clauses if isinstance(c, PoolFilter) and c.mode in modes)
        return frozenset().union(*found)

    @property
    def dedicated_pools(self) -> frozenset[str]:
        """Pools named with `@`."""
        return self._pools(PoolMode.DEDICATED)

    @property
    def exclusive_pools(self) -> frozenset[str]:
        """Pools named with `~`."""
        return self._pools(PoolMode.EXCLUSIVE)

    @property
    def included_pools(self) -> frozenset[str]:
        """Pools this job includes (`+`, `~`, `@`): what other jobs' `~` clauses look at."""
        return self._pools(PoolMode.ONLY, PoolMode.EXCLUSIVE, PoolMode.DEDICATED)

    def matches(self, worker: WorkerFacts, *, pool_context: PoolContext | None = None) -> bool:
        """Whether the job may run on `worker`. No context means no other job includes any pool."""
        context = pool_context or PoolContext()
        return all(c.matches(worker, context) for c in self.clauses)

    def reasons(
        self, worker: WorkerFacts, *, pool_context: PoolContext | None = None
    ) -> tuple[str, ...]:
        """Why `worker` does not match, one line per failing clause (empty when it matches)."""
        context = pool_context or PoolContext()
        return tuple(
            c.reason(worker, context) for c in self.clauses if not c.matches(worker, context)
        )

    def describe(self) -> str:
        """The filters for people: the normalised text, or `no filters`."""
        return self.text or "no filters"


def dedicated_rank(filters: FilterSet, worker: WorkerFacts) -> int:
    """0 when `worker` is in one of the job's dedicated (`@`) pools, else 1 (sorts ascending)."""
    return 0 if worker.pools & filters.dedicated_pools else 1


def parse_filters(text: str, *, field: str = "filters") -> FilterSet:
    """Parse a filter string; raise InvalidInput (with `field`) naming the bad clause and why."""
    if not text.strip():
        return FilterSet()
    return FilterSet(tuple(_parse_clause(part.strip(), field) for part in text.split(",")))


def _parse_clause(clause: str, field_name: str) -> Clause:
    if not clause:
        raise _fail(clause, "empty filter (two commas in a row?)", field_name)
    raw_key, colon, value = clause.partition(":")
    if not colon:
        raise _fail(clause, "expected key:value", field_name)
    try:
        key = FilterKey(raw_key.strip().lower())
    except ValueError:
        known = ", ".join(sorted(FilterKey))
        raise _fail(
            clause, f"unknown key {raw_key.strip()!r} (known: {known})", field_name
        ) from None
    value = value.strip()
    if not value:
        raise _fail(clause, "missing value", field_name)
    if key in (FilterKey.RAM, FilterKey.CORES, FilterKey.GPU):
        return _parse_number(clause, key, value, field_name)
    if key is FilterKey.LABEL:
        return _parse_label(clause, value, field_name)
    if key is FilterKey.POOL:
        return _parse_pool(clause, value, field_name)
    return _parse_names(clause, key, value, field_name)


def _parse_number(clause: str, key: FilterKey, value: str, field_name: str) -> NumberFilter:
    op = next((c for c in Comparison if value.startswith(c)), None)
    if op is None:
        raise _fail(clause, "bad operator (expected <, <=, =, >= or >)", field_name)
    match = _NUMBER.fullmatch(value[len(op) :].strip())
    if match is None:
        raise _fail(clause, f"bad number {value[len(op) :].strip()!r}", field_name)
    unit, decimals = match["unit"], len(match["decimals"] or "")
    if key is not FilterKey.RAM:
        if unit or decimals:
            raise _fail(clause, f"bad number {match[0]!r} (expected a whole number)", field_name)
        return NumberFilter(key, op, float(match["number"]))
    if unit.lower() not in _RAM_UNITS:
        raise _fail(clause, f"unknown unit {unit!r} (expected M, MB, G, GB, T, TB)", field_name)
    name, size = _RAM_UNITS[unit.lower()]
    return NumberFilter(key, op, float(match["number"]), name, size, decimals)


def _join_names(names: Iterable[str], *, negated: bool) -> str:
    names = list(names)
    if not negated:
        return "+".join(names)
    if any("-" in n for n in names):
        return "!" + "+".join(names)
    return "-" + "-".join(names)


def _split_names(value: str) -> tuple[bool, list[str]]:
    """`a+b` -> any of; `-a-b` -> none of (accsyn); `!a+b` -> none of, for names holding `-`."""
    if value.startswith("-"):
        return True, value[1:].split("-")
    if value.startswith("!"):
        return True, value[1:].split("+")
    return False, value.removeprefix("+").split("+")


def _parse_names(clause: str, key: FilterKey, value: str, field_name: str) -> NameFilter:
    negated, names = _split_names(value)
    for name in names:
        slashes = 1 if key is FilterKey.HOSTNAME else 0
        if not _NAME.fullmatch(name) or name.count("/") > slashes:
            what = "hostname" if key is FilterKey.HOSTNAME else f"{key} name"
            raise _fail(clause, f"bad {what} {name!r}", field_name)
    if key is not FilterKey.OS:
        return NameFilter(key, tuple(n.lower() for n in names), negated)
    try:
        return NameFilter(key, tuple(OperatingSystem.parse(n) for n in names), negated)
    except ValueError as exc:
        raise _fail(clause, str(exc), field_name) from None


def _parse_label(clause: str, value: str, field_name: str) -> LabelFilter:
    negated = value[0] in "-!"
    pairs: list[tuple[str, str | None]] = []
    for item in value[1:].split("+") if negated else value.split("+"):
        match = _LABEL.fullmatch(item.strip())
        if match is None:
            raise _fail(clause, f"bad label {item!r} (expected key=value or key)", field_name)
        pairs.append((match["key"], match["value"]))
    return LabelFilter(tuple(pairs), negated)


def _parse_pool(clause: str, value: str, field_name: str) -> PoolFilter:
    if value[0] in "!+-":
        negated, names = _split_names(value)
        mode = PoolMode.NEVER if negated else PoolMode.ONLY
    elif value[0] in tuple(PoolMode):
        mode, names = PoolMode(value[0]), value[1:].split(value[0])
    else:
        mode, names = PoolMode.ONLY, value.split("+")
    for name in names:
        if not _POOL.fullmatch(name):
            problem = f"bad pool name {name!r}" + (" (one mode per pool filter)" if name else "")
            raise _fail(clause, problem, field_name)
    return PoolFilter(mode, frozenset(names))
