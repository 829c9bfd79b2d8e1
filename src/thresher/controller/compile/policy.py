"""The limits a farm sets on what one submission may ask (`ControllerSettings` fields), as
compiling checks them; structural bounds live with the request models (`schemas.base`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from thresher.controller.settings import ControllerSettings
from thresher.core.errors import InvalidInput


@dataclass(frozen=True)
class SubmitPolicy:
    """What a farm allows one job: the defaults are `ControllerSettings`' defaults."""

    max_blocks_per_job: int = ControllerSettings.max_blocks_per_job

    @classmethod
    def of(cls, settings: ControllerSettings) -> SubmitPolicy:
        return cls(max_blocks_per_job=settings.max_blocks_per_job)

    def check_blocks(self, count: int, *, field: str) -> None:
        """Refuse a job of more blocks than the farm allows."""
        if count > self.max_blocks_per_job:
            raise InvalidInput(
                f"the job has {count} blocks; this farm allows at most {self.max_blocks_per_job}"
                " (setting max_blocks_per_job)",
                field=field,
            )


def check_cwd(cwd: str | None) -> None:
    """Refuse a working directory that is not absolute: a worker would resolve it against its
    own directory (POSIX `/render/shot`, Windows `C:\\render` or `\\\\server\\share`)."""
    if cwd is None:
        return
    if not (PurePosixPath(cwd).is_absolute() or PureWindowsPath(cwd).is_absolute()):
        raise InvalidInput(f"cwd must be an absolute path, not {cwd!r}", field="cwd")
