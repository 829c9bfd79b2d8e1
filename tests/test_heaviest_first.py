"""The suite sends its heaviest test files out first (tests/conftest.py, tests/heaviest.txt)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.conftest import HEAVIEST, REPO, heaviest_files, heaviest_first


@dataclass
class _Item:
    nodeid: str


def test_the_listed_files_come_first_in_the_listings_order_and_the_rest_keep_theirs(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "heaviest.txt"
    listing.write_text("# a comment\ntests/c.py  # 90 s\n\ntests/b.py  # 30 s\n")
    ids = ["tests/a.py::t", "tests/b.py::t[x]", "tests/c.py::t", "tests/d.py::t", "tests/b.py::u"]
    items = [_Item(nodeid) for nodeid in ids]
    heaviest_first(items, listing)
    assert [item.nodeid for item in items] == [
        "tests/c.py::t",
        "tests/b.py::t[x]",
        "tests/b.py::u",
        "tests/a.py::t",
        "tests/d.py::t",
    ]


def test_without_a_listing_the_order_is_kept(tmp_path: Path) -> None:
    items = [_Item("tests/b.py::t"), _Item("tests/a.py::t")]
    heaviest_first(items, tmp_path / "absent.txt")
    assert [item.nodeid for item in items] == ["tests/b.py::t", "tests/a.py::t"]


def test_every_listed_file_exists() -> None:
    """A file renamed or removed leaves the listing stale: write it again
    (scripts/heaviest-tests.py)."""
    listed = heaviest_files(HEAVIEST)
    assert listed, "tests/heaviest.txt lists no file"
    assert [name for name in listed if not (REPO / name).is_file()] == []
