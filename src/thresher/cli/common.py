"""What every client command shares: connection options, error reporting, `--json` output.

Client errors leave the CLI as one red line on stderr and an exit status:
  2  the controller refused the request (bad input, unknown id, no permission) or no token
  3  the controller could not be reached
"""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from thresher.client import ThresherError, TransportError

T = TypeVar("T")

if TYPE_CHECKING:
    from thresher.client import Client, Session

DEFAULT_URL = "http://127.0.0.1:8420"
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3

UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        envvar="THRESHER_URL",
        help="Controller URL; several, comma-separated, are tried in turn.",
        show_default=True,
        metavar="URL",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="THRESHER_TOKEN", help="Bearer token.", show_default=False, metavar="T"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, *, code: int = EXIT_REFUSED) -> NoReturn:
    """Print `error: message` in red on stderr and leave with `code`."""
    stderr().print(f"error: {message}", style="red", markup=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def reporting(url: str) -> Iterator[None]:
    """Turn the client's errors raised inside the block into an error line and exit status."""
    try:
        yield
    except TransportError:
        fail(f"cannot reach the controller at {url}", code=EXIT_UNREACHABLE)
    except ThresherError as exc:
        fail(str(exc))


def credentials(url: str, token: str | None) -> tuple[str, str, str | None]:
    """(url, token, CA file) to use: the options, else what `thresher login` stored."""
    ca_file = os.environ.get("THRESHER_CA_FILE") or None
    if token:
        return url, token, ca_file
    from thresher.cli import credentials as stored

    login = stored.load()
    if login is None:
        fail("no token: run `thresher login`, set THRESHER_TOKEN or pass --token")
    if url == DEFAULT_URL and not os.environ.get("THRESHER_URL"):
        url = login.url
    return url, login.token, ca_file or login.ca_file


@contextlib.contextmanager
def session(url: str, token: str | None) -> "Iterator[Session]":
    """A JSON-only session for `url` (no response models): for commands that print what the
    controller answers, so they need not import pydantic to start."""
    url, token, ca_file = credentials(url, token)
    from thresher.client import Session

    with reporting(url), Session(url, token, ca_file=ca_file) as client:
        yield client


@contextlib.contextmanager
def connect(url: str, token: str | None) -> "Iterator[Client]":
    """A Client for `url`; errors inside the block are reported as `reporting` does."""
    url, token, ca_file = credentials(url, token)
    # Imported here: the client's response models (pydantic) are not needed for `--help`.
    from thresher.client import Client

    with reporting(url), Client(url, token, ca_file=ca_file) as client:
        yield client


def dumps(data: Any) -> str:
    """`data` (a model, a list of models, or plain JSON values) as indented JSON."""
    return json.dumps(_plain(data), indent=2)


def print_json(data: Any) -> None:
    typer.echo(dumps(data))


def _plain(data: Any) -> Any:
    if hasattr(data, "model_dump"):  # a response model
        return data.model_dump(mode="json")
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    return data


def table(*headers: str, caption: str | None = None) -> Table:
    """A compact table whose cells do not wrap (a narrow terminal truncates them instead)."""
    new = Table(box=box.SIMPLE_HEAD, caption=caption, pad_edge=False, padding=(0, 1, 0, 0))
    for header in headers:
        new.add_column(header, no_wrap=True)
    return new


def add_row(rows: Table, *cells: str) -> None:
    """Add cells as plain text: names from the farm must not be read as Rich markup."""
    rows.add_row(*(Text(cell) for cell in cells))


def listing(
    found: Sequence[T], as_json: bool, headers: Sequence[str], cells: Callable[[T], Sequence[str]]
) -> None:
    """A listing: `found` as JSON, or a table of `headers` with the `cells` of each item."""
    if as_json:
        print_json(found)
        return
    rows = table(*headers)
    for item in found:
        add_row(rows, *cells(item))
    stdout().print(rows)


def join(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "-"
