"""`thresher access-key create NAME`: an AWS-style key pair for Deadline Cloud's client."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

from typing import Annotated

import typer

from thresher.cli.common import DEFAULT_URL, JsonOption, TokenOption, UrlOption, connect, print_json

app = typer.Typer(help="AWS-style key pairs for the Deadline Cloud compatible routes.")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who the key is for.")],
    role: Annotated[
        str, typer.Option("--role", help="artist, viewer, wrangler or admin (user: artist)")
    ] = "artist",
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Issue a key pair (admins); the secret is shown once. Use it as the AWS key pair of the
    `deadline` CLI pointed at this controller (see docs/openjd.md)."""
    with connect(url, token) as client:
        key = client.create_access_key(name, role)
    if as_json:
        print_json(key)
        return
    typer.echo(f"export AWS_ACCESS_KEY_ID={key['access_key_id']}")
    typer.echo(f"export AWS_SECRET_ACCESS_KEY={key['secret_access_key']}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="access-key")
