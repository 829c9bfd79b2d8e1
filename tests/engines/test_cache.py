from __future__ import annotations

from pathlib import Path

import pytest

from thresher.engines import EngineCache, source_hash


def test_put_then_get_returns_the_source(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "engines")
    digest = cache.put("print('v1')\n")
    assert digest == source_hash("print('v1')\n")
    assert cache.get(digest) == "print('v1')\n"
    # only the final file is left: no temporaries
    assert [p.name for p in (tmp_path / "engines").iterdir()] == [f"{digest}.py"]


def test_put_is_idempotent_and_keeps_revisions_apart(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    first, again, second = cache.put("a = 1\n"), cache.put("a = 1\n"), cache.put("a = 2\n")
    assert first == again != second
    assert cache.get(second) == "a = 2\n"


def test_unknown_digests_are_misses(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    assert cache.get("0" * 64) is None


def test_a_corrupt_file_is_dropped(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    digest = cache.put("a = 1\n")
    cache.path_for(digest).write_text("a = 666\n")
    assert cache.get(digest) is None
    assert not cache.path_for(digest).exists()


@pytest.mark.parametrize("digest", ["../../etc/passwd", "ABC", "g" * 64, "a" * 63])
def test_malformed_digests_are_refused(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        EngineCache(tmp_path).get(digest)
