"""OpenJD `hostRequirements` as Thresher filters over worker attributes.

Filters use the farm's grammar (`key:value`, all must hold, `+` between alternatives, `<`, `>`,
`=`). What maps:

| requirement                          | filter                                   |
| ------------------------------------ | ---------------------------------------- |
| `amount.worker.vcpu` min N / max M   | `cores:>N-1` / `cores:<M+1`              |
| `amount.worker.memory` (MiB)         | `ram:>N-1MB` / `ram:<M+1MB` (MB = MiB)   |
| `amount.worker.gpu`                  | `gpu:>N-1` / `gpu:<M+1`                  |
| `attr.worker.os.family` anyOf a, b   | `os:a+b` (allOf: one `os:` filter each)  |
| any other attribute `attr.X` anyOf   | `label:X=a+X=b` (allOf: one filter each) |

Fractional amounts round to the whole units a worker reports (min up, max down). Other amounts
(`amount.worker.gpu.memory`, `amount.worker.disk.scratch`, custom amounts such as licences) have
no filter: they are returned as unmapped, and the raw requirements stay with the step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["HostFilters", "host_filters"]

_AMOUNT_KEYS = {
    "amount.worker.vcpu": ("cores", ""),
    "amount.worker.memory": ("ram", "MB"),
    "amount.worker.gpu": ("gpu", ""),
}
_OS_FAMILY = "attr.worker.os.family"


@dataclass(frozen=True)
class HostFilters:
    """The filters a step's requirements become, and the requirement names that have none."""

    filters: tuple[str, ...]
    unmapped: tuple[str, ...]


def host_filters(requirements: Mapping[str, Any] | None) -> HostFilters:
    """Convert a step's resolved `hostRequirements` (JSON form) to filters."""
    if not requirements:
        return HostFilters((), ())
    filters: list[str] = []
    unmapped: list[str] = []
    for amount in requirements.get("amounts") or ():
        name = str(amount["name"]).lower()
        if name not in _AMOUNT_KEYS:
            unmapped.append(name)
            continue
        key, unit = _AMOUNT_KEYS[name]
        if amount.get("min") is not None and float(amount["min"]) > 0:
            filters.append(f"{key}:>{math.ceil(float(amount['min'])) - 1}{unit}")
        if amount.get("max") is not None:
            filters.append(f"{key}:<{math.floor(float(amount['max'])) + 1}{unit}")
    for attribute in requirements.get("attributes") or ():
        filters.extend(_attribute_filters(attribute))
    return HostFilters(tuple(filters), tuple(unmapped))


def _attribute_filters(attribute: Mapping[str, Any]) -> list[str]:
    name = str(attribute["name"]).lower()
    if name == _OS_FAMILY:
        key, values = "os", [str(v).lower() for v in _values(attribute)]
    else:
        label = name.removeprefix("attr.")
        key, values = "label", [f"{label}={v}" for v in _values(attribute)]
    if attribute.get("anyOf"):
        return [f"{key}:{'+'.join(values)}"]
    return [f"{key}:{value}" for value in values]


def _values(attribute: Mapping[str, Any]) -> Sequence[Any]:
    return list(attribute.get("anyOf") or attribute.get("allOf") or ())
