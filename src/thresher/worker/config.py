"""A worker's configuration file (TOML), for what is tedious to repeat on the command line.

Every key is optional and the command line wins over the file::

    controller = "http://farm:8420"
    token = "thr_enrol_..."
    name = "ren01"
    lanes = 2
    site = "sthlm"
    pools = ["render", "gpu"]
    capacity = 3000
    work_dir = "/var/lib/thresher"   # default: see default_work_dir
    ahead = 1
    grace = 10.0

    [labels]            # free-form labels that filters can ask for (label:key=value)
    rack = "b2"

    [attributes]        # overrides of detected facts: hostname, os, cores, ram, gpus
    ram = "64GB"

    [lane_engines]      # what each lane runs (engine names or job kinds); others run anything
    0 = ["blender", "povray"]
    1 = ["command"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCALARS: dict[str, type] = {
    "controller": str,
    "token": str,
    "name": str,
    "lanes": int,
    "site": str,
    "capacity": int,
    "work_dir": str,
    "ahead": int,
    "grace": float,
    "lane_gpus": str,
}


@dataclass(frozen=True)
class WorkerFile:
    values: dict[str, Any] = field(default_factory=dict)
    pools: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    lane_engines: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values.get(key)


def default_work_dir(name: str, *, environ: Mapping[str, str], home: Path) -> Path:
    """Where a worker named `name` keeps its work when no work_dir is given: its per-user state
    directory, `$XDG_STATE_HOME/thresher/worker/<name>`, or `~/.local/state/thresher/worker/<name>`
    where XDG_STATE_HOME is unset, empty or relative (as the XDG base directory spec says)."""
    return worker_state_dir(environ=environ, home=home) / name


def worker_state_dir(*, environ: Mapping[str, str], home: Path) -> Path:
    """The folder holding the default work directories of this user's workers."""
    state = environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else home / ".local" / "state"
    return base / "thresher" / "worker"


class ConfigError(ValueError):
    """The file is missing, is not TOML, or holds a key of the wrong type."""


def load_worker_config(path: Path) -> WorkerFile:
    """Read and check a worker configuration file."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SCALARS:
            kind = _SCALARS[key]
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{path}: {key} must be a {kind.__name__}")
            values[key] = value
        elif key not in ("pools", "labels", "attributes", "lane_engines"):
            raise ConfigError(f"{path}: unknown key {key!r}")
    return WorkerFile(
        values=values,
        pools=tuple(_strings(data.get("pools", []), path, "pools")),
        labels=_table(data.get("labels", {}), path, "labels"),
        attributes=_table(data.get("attributes", {}), path, "attributes"),
        lane_engines=_lanes(data.get("lane_engines", {}), path),
    )


def _strings(value: Any, path: Path, key: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: {key} must be a list of strings")
    return list(value)


def _table(value: Any, path: Path, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{key}] must be a table")
    return {str(k): str(v) for k, v in value.items()}


def _lanes(value: Any, path: Path) -> dict[int, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [lane_engines] must be a table")
    out: dict[int, tuple[str, ...]] = {}
    for lane, engines in value.items():
        if not str(lane).isdigit():
            raise ConfigError(f"{path}: lane_engines key {lane!r} is not a lane number")
        out[int(lane)] = tuple(_strings(engines, path, f"lane_engines.{lane}"))
    return out
