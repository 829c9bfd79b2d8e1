"""Path mapping: rewrite the submitter's share paths into this worker's paths.

A rule is ``{"remote": ..., "local": ..., "os": ...}``: ``remote`` is a path prefix as the
submitter wrote it, ``local`` the same share as this worker sees it, and the optional ``os``
(``linux``/``mac``/``windows``) is the *worker* OS the rule is for, so one job can carry rules
for every kind of worker; a rule without ``os`` applies on every worker.

Matching is by path prefix, longest first, on path boundaries only: ``/mnt/proj`` maps
``/mnt/proj/a.exr`` and ``"/mnt/proj"`` but not ``/mnt/projects`` or ``/home/mnt/proj``.
A Windows-style prefix (``P:\\``, ``\\\\server\\share``) matches case-insensitively and with either
separator. When the two sides use different separators, the rest of the path is converted too
(``P:\\shots\\a.exr`` -> ``/mnt/p/shots/a.exr``). Paths may appear anywhere in a string (an
``--opt=PATH`` argument, a line of a scene file); in arguments a path glued to a short option
(``+I/mnt/proj/a.pov``, ``-o/mnt/proj``) is found as well.

Rules must not chain (a ``local`` must not itself be mapped by a rule), which makes mapping
idempotent: mapping an already-mapped string changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from thresher.engines.errors import EngineConfigError
from thresher.engines.platforms import normalize_os

_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:|\\\\|//(?=[^/]))")
# characters that may precede a path's first character without being part of the path
_PATH_CHARS = r"\w.~/\\\-"
# the rest of a path after its mapped prefix ends at quotes, line ends and list separators
_REST = r"""[^"'\r\n\t<>|*?;,:]*"""


def is_windows_style(path: str) -> bool:
    """Whether ``path`` is written Windows-style (drive letter, UNC, or backslashes)."""
    return bool(_WINDOWS_PATH.match(path)) or "\\" in path


@dataclass(frozen=True, slots=True)
class PathRule:
    """One mapping rule; ``os`` is the worker OS it applies on (``None``: every OS)."""

    remote: str
    local: str
    os: str | None = None

    def applies_on(self, os_name: str) -> bool:
        return self.os is None or self.os == os_name


def parse_rules(value: object) -> list[PathRule]:
    """Validate the ``mapped_share_paths`` parameter into rules (:class:`EngineConfigError`)."""
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise EngineConfigError(
            "mapped_share_paths must be a list of {remote, local, os?} objects",
            parameter="mapped_share_paths",
        )
    rules: list[PathRule] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            raise EngineConfigError(
                f"mapped_share_paths[{i}] must be an object", parameter="mapped_share_paths"
            )
        remote, local, os_name = entry.get("remote"), entry.get("local"), entry.get("os")
        unknown = set(entry) - {"remote", "local", "os"}
        if unknown:
            raise EngineConfigError(
                f"mapped_share_paths[{i}] has unknown keys {sorted(unknown)}",
                parameter="mapped_share_paths",
            )
        if not isinstance(remote, str) or not isinstance(local, str) or not remote.strip("/\\"):
            raise EngineConfigError(
                f"mapped_share_paths[{i}] needs non-empty 'remote' and 'local' strings",
                parameter="mapped_share_paths",
            )
        try:
            os_norm = None if os_name in (None, "") else normalize_os(str(os_name))
        except ValueError as exc:
            raise EngineConfigError(
                f"mapped_share_paths[{i}]: {exc}", parameter="mapped_share_paths"
            ) from None
        rules.append(PathRule(_strip_separator(remote), _strip_separator(local), os_norm))
    return rules


def _strip_separator(path: str) -> str:
    stripped = path.rstrip("/\\")
    if re.fullmatch(r"[A-Za-z]:", stripped):
        return stripped  # "P:" keeps meaning the drive root
    return stripped or path[:1]


def _prefix_pattern(remote: str) -> str:
    if not is_windows_style(remote):
        return re.escape(remote)
    pieces = re.split(r"[\\/]", remote)
    return "(?i:" + r"[\\/]".join(re.escape(p) for p in pieces) + ")"


class PathMapper:
    """Applies the rules that hold on one worker OS; see the module docstring for semantics."""

    def __init__(self, rules: Iterable[PathRule], *, os_name: str) -> None:
        self.os_name = normalize_os(os_name)
        active = [r for r in rules if r.applies_on(self.os_name)]
        self.rules: tuple[PathRule, ...] = tuple(
            sorted(active, key=lambda r: len(r.remote), reverse=True)
        )
        self._pattern: re.Pattern[str] | None = None
        if self.rules:
            alternatives = "|".join(
                f"(?P<r{i}>{_prefix_pattern(rule.remote)})" for i, rule in enumerate(self.rules)
            )
            body = rf"(?:{alternatives})(?=[\\/]|[^{_PATH_CHARS}]|$)(?P<rest>{_REST})"
            self._pattern = re.compile(body)
            self._check_no_chains()

    @classmethod
    def from_parameter(cls, value: object, *, os_name: str) -> PathMapper:
        """A mapper from the raw ``mapped_share_paths`` parameter."""
        return cls(parse_rules(value), os_name=os_name)

    def map_text(self, text: str) -> str:
        """Map every path found in free text (a scene file's content, an environment value)."""
        return self._map(text, argument=False)

    def map_argument(self, text: str) -> str:
        """Map paths in one command-line argument (also finds paths glued to short options)."""
        return self._map(text, argument=True)

    def _map(self, text: str, *, argument: bool) -> str:
        if self._pattern is None:
            return text

        def replace(match: re.Match[str]) -> str:
            start = match.start()
            if start > 0 and not self._boundary_before(text, start, argument=argument):
                return match.group(0)
            index = next(i for i in range(len(self.rules)) if match.group(f"r{i}") is not None)
            rule = self.rules[index]
            rest = match.group("rest")
            remote_windows = is_windows_style(rule.remote)
            local_windows = is_windows_style(rule.local)
            if remote_windows and not local_windows:
                rest = rest.replace("\\", "/")
            elif local_windows and not remote_windows:
                rest = rest.replace("/", "\\")
            return rule.local + rest

        return self._pattern.sub(replace, text)

    @staticmethod
    def _boundary_before(text: str, start: int, *, argument: bool) -> bool:
        before = text[start - 1]
        if not re.match(f"[{_PATH_CHARS}]", before):
            return True
        # "+I/path", "-o/path": a short option glued to the path at the argument's start
        return argument and re.fullmatch(r"[+-][A-Za-z]{1,2}", text[:start]) is not None

    def _check_no_chains(self) -> None:
        for rule in self.rules:
            mapped = self.map_argument(rule.local)
            if mapped != rule.local:
                raise EngineConfigError(
                    f"path mapping rules chain: local path {rule.local!r} would be mapped again "
                    f"to {mapped!r}",
                    parameter="mapped_share_paths",
                )
