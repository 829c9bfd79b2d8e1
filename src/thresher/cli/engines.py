"""Engine commands: `engines [list|show|publish|enable|disable|rollback]`."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    connect,
    fail,
    listing,
    print_json,
    stdout,
    table,
)

if TYPE_CHECKING:
    from thresher.schemas import engines as schema

EngineName = Annotated[str, typer.Argument(metavar="NAME", help="Engine name.", show_default=False)]
WhereOption = Annotated[
    str | None,
    typer.Option(
        "--where", metavar="COND", help="Only engines matching, e.g. 'type=compute and enabled=1'."
    ),
]


def _revision(engine: "schema.EngineOut") -> str:
    if engine.revision is None:
        return "-"
    return "0 (built in)" if engine.builtin else str(engine.revision)


def _list(where: str | None, as_json: bool, url: str, token: str | None) -> None:
    with connect(url, token) as client:
        found = client.engines(where=where)
    listing(
        found,
        as_json,
        ("name", "revision", "latest", "enabled", "type", "extensions"),
        lambda engine: (
            engine.name,
            _revision(engine),
            str(engine.latest_revision),
            "yes" if engine.enabled else "no",
            engine.type or "-",
            " ".join(engine.settings.get("filename_extensions") or []) or "-",
        ),
    )


def list_root(
    ctx: typer.Context,
    where: WhereOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List engines (built in and published); the subcommands act on one."""
    if ctx.invoked_subcommand is None:
        _list(where, as_json, url, token)


def list_engines(
    where: WhereOption = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List engines (built in and published)."""
    _list(where, as_json, url, token)


def show(
    name: EngineName,
    revision: Annotated[
        int | None, typer.Option("--revision", "-r", min=0, help="Print this revision's source.")
    ] = None,
    source: Annotated[bool, typer.Option("--source", help="Print the current source.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show an engine: its revisions and, with --source or --revision, its source."""
    with connect(url, token) as client:
        if revision is not None:
            found = client.engine_source(name, revision)
            if as_json:
                print_json(found)
            else:
                typer.echo(found.source, nl=not found.source.endswith("\n"))
            return
        engine = client.engine(name)
    if as_json:
        print_json(engine)
        return
    if source:
        text = engine.source or ""
        typer.echo(text, nl=not text.endswith("\n"))
        return
    _describe(engine)


def _describe(engine: "schema.EngineDetail") -> None:
    out = stdout()
    state = "enabled" if engine.enabled else "disabled"
    out.print(
        f"[bold]{escape(engine.name)}[/]: revision {_revision(engine)}, {state}", soft_wrap=True
    )
    for key in ("type", "items", "filename_extensions", "default_range", "default_bucketsize"):
        value = engine.settings.get(key)
        shown = " ".join(value) if isinstance(value, list) else str(value)
        out.print(f"  {key}: {shown or '-'}", markup=False, soft_wrap=True)
    rows = table("revision", "current", "published by", "published", "source hash")
    for rev in engine.revisions:
        add_row(
            rows,
            f"{rev.revision} (built in)" if rev.builtin else str(rev.revision),
            "*" if rev.current else "",
            rev.published_by,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(rev.published_at)),
            rev.source_hash[:12],
        )
    out.print(rows)


def publish(
    name: EngineName,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="The engine's Python source.", show_default=False),
    ],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Publish FILE as the next revision of engine NAME (admins); it becomes current."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    with connect(url, token) as client:
        engine = client.publish_engine(name, text)
    if as_json:
        print_json(engine)
    else:
        typer.echo(f"engine {engine.name}: revision {engine.revision} published")


def enable(
    name: EngineName,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Let new jobs use an engine again (admins)."""
    with connect(url, token) as client:
        engine = client.enable_engine(name)
    if as_json:
        print_json(engine)
    else:
        typer.echo(f"engine {engine.name}: enabled")


def disable(
    name: EngineName,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Refuse new jobs naming an engine (admins); queued tasks still run."""
    with connect(url, token) as client:
        engine = client.disable_engine(name)
    if as_json:
        print_json(engine)
    else:
        typer.echo(f"engine {engine.name}: disabled")


def rollback(
    name: EngineName,
    revision: Annotated[
        int,
        typer.Argument(metavar="REV", min=0, help="Revision to make current; 0 is the built-in."),
    ],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Make an older revision current again (admins); new tasks use it."""
    with connect(url, token) as client:
        engine = client.rollback_engine(name, revision)
    if as_json:
        print_json(engine)
    else:
        typer.echo(f"engine {engine.name}: revision {_revision(engine)} is current")


def register(app: typer.Typer) -> None:
    engines_app = typer.Typer(name="engines", help="Engines: the scripts that run applications.")
    engines_app.callback(invoke_without_command=True)(list_root)
    engines_app.command("list")(list_engines)
    engines_app.command("show")(show)
    engines_app.command("publish")(publish)
    engines_app.command("enable")(enable)
    engines_app.command("disable")(disable)
    engines_app.command("rollback")(rollback)
    app.add_typer(engines_app)
