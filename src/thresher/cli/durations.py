"""How the CLI writes durations and estimates."""


def duration_text(seconds: float | None) -> str:
    """`42s`, `3m 05s`, `2h 10m`, `1d 4h`; `-` when unknown."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def eta_text(job: dict[str, object] | None, eta_s: float | None) -> str:
    """A job's ETA column: `done` once it ended, else the estimate."""
    if job is not None and job.get("finished_at") is not None:
        return "done"
    return duration_text(eta_s)
