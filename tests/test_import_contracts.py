"""The import contracts in pyproject.toml name every package they must: a package added to
src/thresher is covered without anyone remembering to list it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "thresher"


def _contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    (found,) = (c for c in contracts if c["name"] == name)
    return found


def _subpackages() -> set[str]:
    return {f"thresher.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}


def test_thresher_has_no_modules_outside_its_packages() -> None:
    # A module beside __init__.py would be in no contract's source_modules.
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_every_package_but_testing_is_forbidden_to_import_testing() -> None:
    contract = _contract("Only tests import thresher.testing")
    assert contract["forbidden_modules"] == ["thresher.testing"]
    assert set(contract["source_modules"]) == _subpackages() - {"thresher.testing"}


def test_every_package_but_the_store_is_forbidden_sql() -> None:
    contract = _contract("Only the store speaks SQL")
    assert set(contract["source_modules"]) == _subpackages() - {
        "thresher.store",
        "thresher.testing",
    }


def test_every_package_but_testing_has_a_layer() -> None:
    contract = _contract("Layers point down")
    named = {m.strip() for layer in contract["layers"] for m in layer.replace(":", "|").split("|")}
    assert named == _subpackages() - {"thresher.testing"}
