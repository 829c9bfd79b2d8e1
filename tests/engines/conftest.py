"""Fixtures for the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from thresher.engines import EngineTask


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., EngineTask]:
    """Build an EngineTask on Linux with a fresh work directory; keywords override fields."""

    def build(**fields: Any) -> EngineTask:
        workdir = tmp_path / "work"
        workdir.mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "job_id": "job1",
            "index": 0,
            "frames": (1,),
            "workdir": str(workdir),
            "os_name": "linux",
        }
        values.update(fields)
        return EngineTask(**values)

    return build
