"""What the desktop submitter decides, without a display: the form's fields (`Form`), a file
sequence found from one file of it, the engines ordered for an input, the filters composed and
checked, the API payload built (what the JSON button shows and `client.create_job` sends), and
the settings remembered between runs. No Qt here: the window (`window.py`) only shows a `Form`
and calls these."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path, PurePath
from typing import Any

from thresher.core.errors import InvalidInput
from thresher.core.filters import parse_filters
from thresher.core.frames import FrameSet

PLATFORMS = ("common", "linux", "windows", "mac")
SPLIT_MODES = ("buckets", "single")
#: A frame number in a file name: the last run of digits before the extension.
_NUMBERED = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[^.\d][^.]*)?$")
_SITE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class EnvRow:
    platform: str  # one of PLATFORMS
    name: str
    value: str


@dataclass(frozen=True)
class Form:
    """Every field of the submitter's window, as plain values."""

    input: str = ""
    engine: str = ""
    name: str = ""
    range: str = ""
    sequence_input: bool = False  # the input is a per-frame file pattern (####)
    priority_frames: str = ""
    priority: int = 50
    split: str = "buckets"  # buckets of `bucket` items, or a single task
    bucket: int = 1
    ram_gb: int = 0  # at least so much memory; 0: any
    sites: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    filters: str = ""  # free text, the filter grammar
    dependencies: tuple[str, ...] = ()
    upload_dependencies: bool = False
    output: str = ""
    clear_output: bool = False
    download_output: bool = False
    env: tuple[EnvRow, ...] = ()
    arguments: str = ""  # extra application arguments, shell-word rules (never run by a shell)
    paused: bool = False


@dataclass(frozen=True)
class Sequence_:
    """A file sequence found on disk: `pattern` names a frame with `#` (as wide as the
    numbers are padded), `frames` is the frame set of the files present."""

    pattern: str
    frames: str
    first: int
    last: int
    count: int


@dataclass(frozen=True)
class EngineChoice:
    name: str
    extensions: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


# -- a sequence from one file ---------------------------------------------------------------------


def detect_sequence(path: str, siblings: Iterable[str]) -> Sequence_ | None:
    """The sequence `path` belongs to, from the names of the files beside it (`siblings`,
    names only): same head, same extension, numbers padded alike. None when its name holds no
    number."""
    name = PurePath(path).name
    match = _NUMBERED.match(name)
    if match is None:
        return None
    head, digits, tail = match["head"], match["digits"], match["tail"] or ""
    width = len(digits)
    frames = {int(digits)}
    for other in siblings:
        found = _NUMBERED.match(other)
        if found and found["head"] == head and (found["tail"] or "") == tail:
            number = found["digits"]
            if len(number) == width or (not digits.startswith("0") and len(number) >= width):
                frames.add(int(number))
    ordered = sorted(frames)
    spec = FrameSet.from_frames(ordered).spec
    pattern = str(PurePath(path).with_name(f"{head}{'#' * width}{tail}"))
    return Sequence_(pattern, spec, ordered[0], ordered[-1], len(ordered))


def sequence_on_disk(path: str) -> Sequence_ | None:
    """`detect_sequence` over the files in `path`'s folder."""
    folder = Path(path).parent
    try:
        names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
    except OSError:
        names = []
    return detect_sequence(path, names)


# -- engines --------------------------------------------------------------------------------------


def order_engines(engines: Iterable[EngineChoice], path: str) -> list[EngineChoice]:
    """The enabled engines, those that accept `path`'s extension first (then by name)."""
    suffix = PurePath(path).suffix.lower()
    usable = [e for e in engines if e.enabled]
    return sorted(usable, key=lambda e: (suffix not in [x.lower() for x in e.extensions], e.name))


# -- filters --------------------------------------------------------------------------------------


def composed_filters(form: Form) -> str:
    """The job's filters: RAM, sites and pools as clauses, then the free text."""
    clauses = []
    if form.ram_gb > 0:
        clauses.append(f"ram:>{form.ram_gb}GB")
    if form.sites:
        clauses.append("site:" + "+".join(form.sites))
    clauses += [f"pool:+{pool}" for pool in form.pools]
    if form.filters.strip():
        clauses.append(form.filters.strip())
    return ",".join(clauses)


def filter_problem(text: str) -> str | None:
    """What is wrong with a filter text (the live check under the field), None if nothing."""
    try:
        parse_filters(text, field="filters")
    except InvalidInput as exc:
        return exc.message
    return None


# -- the payload ----------------------------------------------------------------------------------


def job_name(form: Form) -> str:
    if form.name.strip():
        return form.name.strip()
    stem = PurePath(form.input).name if form.input else ""
    return f"{form.engine}: {stem}" if stem else form.engine


def environment(rows: Iterable[EnvRow]) -> dict[str, dict[str, str]]:
    """Rows as the engine's `envs`: `{"common": {...}, "linux": {...}, ...}`."""
    envs: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.name.strip():
            envs.setdefault(row.platform, {})[row.name.strip()] = row.value
    return envs


def problems(form: Form) -> list[Problem]:
    """Everything the window must show before it lets the job go, each with its field."""
    found: list[Problem] = []
    if not form.input.strip():
        found.append(Problem("input", "drop a scene or browse for one"))
    if not form.engine:
        found.append(Problem("engine", "choose an engine"))
    found += _frame_problems(form)
    if form.split not in SPLIT_MODES:
        found.append(Problem("split", f"split mode is one of {', '.join(SPLIT_MODES)}"))
    if form.split == "buckets" and form.bucket < 1:
        found.append(Problem("bucket", "a bucket holds at least one item"))
    if not 0 <= form.priority <= 100:
        found.append(Problem("priority", "priority is 0 to 100"))
    bad_sites = [s for s in form.sites if not _SITE.fullmatch(s)]
    if bad_sites:
        found.append(Problem("sites", f"not a site name: {', '.join(bad_sites)}"))
    problem = filter_problem(composed_filters(form))
    if problem:
        found.append(Problem("filters", problem))
    found += _env_problems(form.env)
    try:
        shlex.split(form.arguments)
    except ValueError as exc:
        found.append(Problem("arguments", f"cannot split the arguments: {exc}"))
    return found


def _frame_problems(form: Form) -> list[Problem]:
    found = []
    for name, text in (("range", form.range), ("priority_frames", form.priority_frames)):
        if text.strip():
            try:
                FrameSet.parse(text.strip(), field=name)
            except InvalidInput as exc:
                found.append(Problem(name, exc.message))
    return found


def _env_problems(rows: Iterable[EnvRow]) -> list[Problem]:
    found = []
    for row in rows:
        if row.platform not in PLATFORMS:
            found.append(Problem("env", f"platform is one of {', '.join(PLATFORMS)}"))
        if "=" in row.name:
            found.append(Problem("env", f"a variable name holds no '=': {row.name!r}"))
    return found


def build_payload(form: Form) -> dict[str, Any]:
    """The exact body `POST /api/v1/jobs` gets (accsyn's engine-job shape); fields left empty
    are left out, so the controller's defaults apply. Call `problems` first."""
    settings: dict[str, Any] = (
        {"split_mode": "single", "task_bucketsize": 0}
        if form.split == "single"
        else {"split_mode": "buckets", "task_bucketsize": form.bucket}
    )
    for flag in ("clear_output", "download_output", "upload_dependencies"):
        if getattr(form, flag):
            settings[flag] = True
    parameters: dict[str, Any] = {}
    arguments = shlex.split(form.arguments)
    if arguments:
        parameters["arguments"] = arguments
    payload: dict[str, Any] = {
        "name": job_name(form),
        "engine": form.engine,
        "input": form.input.strip(),
        "range": form.range.strip() or None,
        "priority_frames": form.priority_frames.strip() or None,
        "priority": form.priority,
        "output": form.output.strip() or None,
        "filters": composed_filters(form) or None,
        "dependencies": [d for d in form.dependencies if d.strip()] or None,
        "envs": environment(form.env) or None,
        "parameters": parameters or None,
        "settings": settings,
        "paused": form.paused or None,
    }
    return {k: v for k, v in payload.items() if v is not None}


def payload_json(form: Form) -> str:
    """The payload as the JSON button shows it."""
    return json.dumps(build_payload(form), indent=2, sort_keys=True)


# -- settings remembered -------------------------------------------------------------------

#: What is remembered between runs: how a person submits, not what (no input, name or range).
REMEMBERED = (
    "engine",
    "priority",
    "split",
    "bucket",
    "ram_gb",
    "sites",
    "pools",
    "filters",
    "output",
    "clear_output",
    "download_output",
    "upload_dependencies",
    "env",
    "arguments",
)


def settings_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_CONFIG_HOME/thresher/submitter.json`, else `~/.config/thresher/submitter.json`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", str(Path.home()))) / ".config")
    return Path(base) / "thresher" / "submitter.json"


def remembered(form: Form) -> dict[str, Any]:
    data = asdict(form)
    return {k: data[k] for k in REMEMBERED}


def restored(data: Mapping[str, Any], base: Form | None = None) -> Form:
    """`base` (default: an empty form) with the remembered values that still make sense."""
    form = base or Form()
    types = {f.name: f.type for f in fields(Form)}
    values: dict[str, Any] = {}
    for key in REMEMBERED:
        if key not in data:
            continue
        value = data[key]
        if key == "env" and isinstance(value, list):
            value = tuple(
                EnvRow(
                    str(r.get("platform", "common")),
                    str(r.get("name", "")),
                    str(r.get("value", "")),
                )
                for r in value
                if isinstance(r, dict)
            )
        elif isinstance(value, list):
            value = tuple(str(v) for v in value)
        expected = str(types[key])
        if _fits(value, expected):
            values[key] = value
    return replace(form, **values)


def _env_row(row: Mapping[str, Any]) -> EnvRow:
    return EnvRow(
        str(row.get("platform", "common")), str(row.get("name", "")), str(row.get("value", ""))
    )


def _fits(value: Any, expected: str) -> bool:
    if expected == "bool":
        return isinstance(value, bool)
    if expected == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "str":
        return isinstance(value, str)
    return isinstance(value, tuple)


def load_settings(path: Path) -> Form:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Form()
    return restored(data) if isinstance(data, dict) else Form()


def save_settings(path: Path, form: Form) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(remembered(form), indent=2), encoding="utf-8")
    temporary.replace(path)


def lines(text: str) -> tuple[str, ...]:
    """A multi-line field's non-empty lines."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def dependency_rows(paths: Sequence[str]) -> tuple[str, ...]:
    """Dependency rows as given: local paths or `share=` paths, one per row, blanks dropped."""
    return tuple(p.strip() for p in paths if p.strip())
