"""Per-OS environment variables from the ``envs`` parameter.

``envs`` is either flat, ``{"NAME": "value"}``, or per OS,
``{"common": {...}, "linux": {...}, "mac": {...}, "windows": {...}}``, where the worker's OS
section is applied over ``common``. A value may refer to the environment it extends with
``$NAME`` or ``${NAME}`` (``"PATH": "/opt/app/bin:${PATH}"``; ``$$`` is a literal ``$``); a
``None`` value removes the variable.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from thresher.engines.errors import EngineConfigError
from thresher.engines.platforms import OS_NAMES, normalize_os

_SECTIONS = frozenset(("common", *OS_NAMES))


def is_per_os(envs: Mapping[str, object]) -> bool:
    """Whether ``envs`` is written per OS (every key a section name, every value a mapping)."""
    return bool(envs) and all(
        key in _SECTIONS and isinstance(value, Mapping) for key, value in envs.items()
    )


def select_envs(envs: object, *, os_name: str) -> dict[str, str | None]:
    """The variables ``envs`` sets on ``os_name`` (``None`` values mean "unset")."""
    if envs is None:
        return {}
    if not isinstance(envs, Mapping):
        raise EngineConfigError("envs must be an object", parameter="envs")
    os_name = normalize_os(os_name)
    if is_per_os(envs):
        merged: dict[str, object] = {}
        merged.update(envs.get("common", {}))
        merged.update(envs.get(os_name, {}))
    else:
        stray = sorted(k for k in envs if k in _SECTIONS and isinstance(envs[k], Mapping))
        if stray:
            raise EngineConfigError(
                f"envs mixes per-OS sections {stray} with plain variables", parameter="envs"
            )
        merged = dict(envs)
    result: dict[str, str | None] = {}
    for name, value in merged.items():
        if not isinstance(name, str) or not name or "=" in name:
            raise EngineConfigError(f"bad environment variable name {name!r}", parameter="envs")
        if value is not None and not isinstance(value, str | int | float):
            raise EngineConfigError(
                f"environment variable {name} must be a string, number or null", parameter="envs"
            )
        result[name] = None if value is None else str(value)
    return result


def apply_envs(base: Mapping[str, str], updates: Mapping[str, str | None]) -> dict[str, str]:
    """``base`` with ``updates`` applied in order; values may refer to the variables before them."""
    env = dict(base)
    for name, value in updates.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = string.Template(value).safe_substitute(env)
    return env
