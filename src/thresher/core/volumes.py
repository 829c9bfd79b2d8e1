"""Volumes and share paths: ``share=NAME/rel/path`` resolved to a site's root, never outside it.

A volume is a named storage root with one root path per site and OS (``roots[site][os]``; the
OS key ``*`` stands for any OS). A share path names a volume and a path relative to its root;
it may stand alone (``share=proj/shots/a.pov``) or inside a longer string (an argument such as
``+Ishare=proj/a.pov`` or ``--scene=share=proj/a.blend``): the share path runs from ``share=``
to the first blank, quote or list separator.

Pure and standard library only, so the controller (refusing a bad path at submit, a 422
naming its field), the worker (resolving it to its site's root before the task runs) and any
other part (a container mounting a volume root) decide alike. Checks here are lexical: a
component ``..``, an absolute path after the volume name, a backslash or a NUL are refused.
Symbolic links are the worker's to check (`thresher.worker.volumes`), where the files are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from thresher.core.errors import InvalidInput

#: What a volume or site name may be.
NAME_PATTERN = r"[A-Za-z0-9_.-]{1,100}"
_NAME = re.compile(rf"^{NAME_PATTERN}$")
#: A share path inside any text: the volume name, then an optional /rest up to a blank, quote,
#: or list separator. It starts a word (``myshare=x`` is none) or follows a short option glued
#: to it (``+Ishare=proj/a.pov``, ``-oshare=proj/out``).
SHARE_PATH = re.compile(
    r"(?:(?<![A-Za-z0-9_])|(?<=[-+][A-Za-z]))share="
    rf"(?P<volume>{NAME_PATTERN})(?P<rest>/[^\s\"'<>|;,]*)?"
)
ANY_OS = "*"
OS_NAMES = ("linux", "mac", "windows", ANY_OS)


class VolumeError(InvalidInput):
    """A share path that names no volume, escapes its root or has no root where it runs."""


@dataclass(frozen=True)
class ShareRef:
    """One share path: its volume and its path relative to the volume root (``/``-separated,
    normalised: no ``.``, no empty parts; ``""`` is the root itself)."""

    volume: str
    rel: str

    @property
    def text(self) -> str:
        return f"share={self.volume}/{self.rel}" if self.rel else f"share={self.volume}"


@dataclass(frozen=True)
class Volume:
    """A named storage root: ``roots[site][os]`` is its root path there."""

    name: str
    roots: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    description: str = ""

    def root_for(self, site: str, os_name: str) -> str | None:
        """This volume's root at `site` for a machine running `os_name` (the site's ``*``
        root when it has none for that OS), or None."""
        at_site = self.roots.get(site) or {}
        return at_site.get(os_name) or at_site.get(ANY_OS)


def check_name(name: str, *, what: str, field_name: str = "name") -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            f"bad {what} name {name!r}: 1-100 of letters, digits, _ . -", field=field_name
        )
    return name


def normalise_rel(rest: str, *, field_name: str | None = None) -> str:
    """The relative part of a share path normalised; :class:`VolumeError` for ``..``, NUL or
    a backslash (a Windows separator would let ``..\\`` through on a Windows worker)."""
    if "\x00" in rest or "\\" in rest:
        raise VolumeError("a share path may not hold a backslash or a NUL", field=field_name)
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise VolumeError(
            f"share path {rest!r} leaves its volume root ('..' is not allowed)", field=field_name
        )
    return "/".join(parts)


def find_refs(text: str, *, field_name: str | None = None) -> list[ShareRef]:
    """Every share path in `text`; :class:`VolumeError` for one that escapes its root."""
    if "share=" not in text:
        return []
    return [
        ShareRef(m["volume"], normalise_rel(m["rest"] or "", field_name=field_name))
        for m in SHARE_PATH.finditer(text)
    ]


def walk_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON-like value with its field name (``parameters.args[2]``)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk_strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from walk_strings(item, f"{where}[{i}]")


def check_refs(fields: Mapping[str, Any], volumes: Mapping[str, Volume]) -> list[ShareRef]:
    """Check every share path in `fields` (field name -> JSON-like value): each names a known
    volume and stays in its root. Raises the first problem (:class:`VolumeError` naming the
    field); returns the share paths found."""
    found: list[ShareRef] = []
    for where, text in (pair for name, v in fields.items() for pair in walk_strings(v, name)):
        for ref in find_refs(text, field_name=where):
            if ref.volume not in volumes:
                known = ", ".join(sorted(volumes)) or "none"
                raise VolumeError(f"unknown volume {ref.volume!r} (known: {known})", field=where)
            found.append(ref)
    return found


def join_root(root: str, rel: str) -> str:
    """`rel` (``/``-separated) under `root`, in the root's own separator style."""
    windows = "\\" in root or re.match(r"^[A-Za-z]:", root) is not None
    sep = "\\" if windows else "/"
    base = root.rstrip("/\\") or root[:1]
    if not rel:
        return base
    tail = rel.replace("/", sep)
    return base + tail if base.endswith(sep) else f"{base}{sep}{tail}"


def resolve_text(
    text: str, volumes: Mapping[str, Volume], *, site: str, os_name: str
) -> tuple[str, list[tuple[str, str]]]:
    """`text` with every share path replaced by its path under the volume's root at `site`,
    and the (root, path) pairs replaced (for the worker's symlink check)."""
    pairs: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        name = match["volume"]
        volume = volumes.get(name)
        if volume is None:
            raise VolumeError(f"unknown volume {name!r}")
        root = volume.root_for(site, os_name)
        if root is None:
            raise VolumeError(f"volume {name!r} has no root at site {site!r} for {os_name}")
        path = join_root(root, normalise_rel(match["rest"] or ""))
        pairs.append((root, path))
        return path

    if "share=" not in text:
        return text, pairs
    return SHARE_PATH.sub(replace, text), pairs


def resolve_value(
    value: Any, volumes: Mapping[str, Volume], *, site: str, os_name: str
) -> tuple[Any, list[tuple[str, str]]]:
    """A JSON-like value with every share path in its strings resolved (see `resolve_text`)."""
    pairs: list[tuple[str, str]] = []

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            text, found = resolve_text(item, volumes, site=site, os_name=os_name)
            pairs.extend(found)
            return text
        if isinstance(item, Mapping):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value), pairs


def to_share(path: str, volumes: Mapping[str, Volume], *, site: str, os_name: str) -> str | None:
    """The share path of a local `path` under one of the volumes' roots at `site`, or None
    (the reverse of resolving: what a submitter's local path is called farm-wide)."""
    norm = path.replace("\\", "/").rstrip("/")
    for volume in sorted(volumes.values(), key=lambda v: v.name):
        root = volume.root_for(site, os_name)
        if root is None:
            continue
        base = root.replace("\\", "/").rstrip("/")
        if norm == base:
            return f"share={volume.name}"
        if norm.startswith(base + "/"):
            return f"share={volume.name}/{normalise_rel(norm[len(base) + 1 :])}"
    return None


def input_refs(payload: Mapping[str, Any]) -> list[ShareRef]:
    """The share paths a job reads (its input, inputs and dependencies): what a site needs
    before it runs the job's tasks."""
    texts = [
        payload.get("input"),
        *(payload.get("inputs") or ()),
        *(payload.get("dependencies") or ()),
    ]
    refs: list[ShareRef] = []
    for text in texts:
        if isinstance(text, str):
            refs.extend(r for r in find_refs(text) if r.rel)
    return list(dict.fromkeys(refs))
