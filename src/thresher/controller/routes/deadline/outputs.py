"""A job's outputs as Deadline Cloud job attachments: the files under its output directories,
described by synthesised output manifests (`2023-03-03`, xxh128 hashes) that the `deadline` CLI
reads from the attachments endpoint (routes/deadline/s3.py).

A job's output directories are its OpenJD PATH parameters of `dataFlow` OUT or INOUT (what
`deadline bundle submit` treats as outputs) and the output directories of its asset references.
Only a directory inside a volume root of the controller's own site is served (resolved with its
symlinks, so a link out of the root is refused too); files are read where the job wrote them.
The hashes are remembered (path, size, mtime) so that a data object asked for by hash is found
again; that index is the controller's memory only, rebuilt by listing the job's outputs.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash

from thresher.core.model import JobRecord
from thresher.core.volumes import Volume

HASH_ALG = "xxh128"
MANIFEST_VERSION = "2023-03-03"
#: Files listed per job at most; more are left out (the listing says how many were).
MAX_FILES = 10_000
#: Hashes remembered at most (the oldest forgotten first).
INDEX_MAX = 200_000
#: Places remembered per hash (the same bytes written by many jobs: the latest ones).
PLACES_MAX = 64
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OutputFile:
    path: str
    """Where it is, absolute (no symlink on the way: it was found walking a resolved root)."""
    rel: str
    """Its path under its root, `/`-separated."""
    size: int
    mtime_ns: int
    hash: str
    ident: tuple[int, int] = (0, 0)
    """(device, inode) of the file hashed: the file served must be that one."""


@dataclass(frozen=True)
class OutputRoot:
    root: str
    files: tuple[OutputFile, ...]

    def manifest(self) -> bytes:
        """The output manifest the CLI decodes (canonical JSON: sorted keys, no spaces)."""
        paths = [
            {"hash": f.hash, "mtime": f.mtime_ns // 1000, "path": f.rel, "size": f.size}
            for f in sorted(self.files, key=lambda f: f.rel)
        ]
        document = {
            "hashAlg": HASH_ALG,
            "manifestVersion": MANIFEST_VERSION,
            "paths": paths,
            "totalSize": sum(f.size for f in self.files),
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @property
    def modified_ns(self) -> int:
        return max((f.mtime_ns for f in self.files), default=0)


def output_dirs(job: JobRecord) -> list[str]:
    """The job's output directories as submitted (absolute paths, not yet checked)."""
    payload: Mapping[str, Any] = job.spec.payload
    plan = payload.get("openjd") or {}
    template = plan.get("template") or {}
    values = plan.get("parameter_values") or {}
    found: list[str] = []
    for definition in template.get("parameterDefinitions") or []:
        if (
            isinstance(definition, dict)
            and definition.get("type") == "PATH"
            and definition.get("dataFlow") in ("OUT", "INOUT")
            and definition.get("objectType", "DIRECTORY") == "DIRECTORY"
        ):
            value = (values.get(definition.get("name")) or {}).get("value")
            if isinstance(value, str) and value:
                found.append(value)
    refs = payload.get("asset_references") or {}
    refs = refs.get("assetReferences", refs) if isinstance(refs, dict) else {}
    outputs = refs.get("outputs") if isinstance(refs, dict) else None
    if isinstance(outputs, dict):
        found += [d for d in outputs.get("directories") or [] if isinstance(d, str) and d]
    return list(dict.fromkeys(os.path.normpath(d) for d in found))


def served_roots(volumes: Mapping[str, Volume], site: str, os_name: str) -> list[str]:
    """The volume roots of `site` for `os_name`, resolved."""
    roots = (v.root_for(site, os_name) for v in volumes.values())
    return [os.path.realpath(r) for r in roots if r]


def inside(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class OutputIndex:
    """Hashes of output files, by (path, size, mtime), and where each hash was seen (by job)."""

    def __init__(self, limit: int = INDEX_MAX) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._hashes: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
        self._seen: OrderedDict[str, dict[str, tuple[int, OutputFile]]] = OrderedDict()

    def scan(self, job_id: int, dirs: Iterable[str], roots: list[str]) -> list[OutputRoot]:
        """Each output directory inside `roots` with its files (symlinks left out); blocking."""
        out: list[OutputRoot] = []
        budget = MAX_FILES
        for wanted in dirs:
            real = os.path.realpath(wanted)
            if not os.path.isabs(wanted) or not inside(real, roots) or not os.path.isdir(real):
                continue
            files: list[OutputFile] = []
            for folder, subdirs, names in os.walk(real):
                subdirs.sort()
                for name in sorted(names):
                    if budget <= 0:
                        break
                    path = os.path.join(folder, name)
                    rel = os.path.relpath(path, real).replace(os.sep, "/")
                    done = self._file(job_id, path, rel)
                    if done is not None:
                        files.append(done)
                        budget -= 1
            if files:
                out.append(OutputRoot(wanted, tuple(files)))
        return out

    def _file(self, job_id: int, path: str, rel: str) -> OutputFile | None:
        """The file at `path` hashed (a symlink, or anything but a regular file: None)."""
        try:
            stream = open_plain(path)
        except OSError:
            return None
        with stream:
            st = os.fstat(stream.fileno())
            key = (path, st.st_size, st.st_mtime_ns, st.st_ino)
            with self._lock:
                known = self._hashes.get(key)
            if known is None:
                hasher = xxhash.xxh3_128()
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                known = hasher.hexdigest()
        found = OutputFile(path, rel, st.st_size, st.st_mtime_ns, known, (st.st_dev, st.st_ino))
        with self._lock:
            self._hashes[key] = known
            self._hashes.move_to_end(key)
            places = self._seen.setdefault(known, {})
            places.pop(path, None)
            places[path] = (job_id, found)
            while len(places) > PLACES_MAX:  # the same content in many places: the latest
                del places[next(iter(places))]
            self._seen.move_to_end(known)
            while len(self._hashes) > self._limit:
                self._hashes.popitem(last=False)
            while len(self._seen) > self._limit:
                self._seen.popitem(last=False)
        return found

    def where(self, hash_: str) -> list[tuple[int, OutputFile]]:
        """The (job id, file) pairs last seen with `hash_`; `open_unchanged` checks them."""
        with self._lock:
            return list((self._seen.get(hash_) or {}).values())


def open_plain(path: str) -> BinaryIO:
    """`path` opened for reading: a regular file, not through a symlink at its end."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def open_unchanged(file: OutputFile) -> BinaryIO | None:
    """`file` opened, if it is still the very file hashed (same inode, size and mtime)."""
    try:
        stream = open_plain(file.path)
    except OSError:
        return None
    st = os.fstat(stream.fileno())
    if ((st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns) != (
        file.ident,
        file.size,
        file.mtime_ns,
    ):
        stream.close()
        return None
    return stream


def hash_data(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)
