"""Security commands: `login`, `logout`, `token create|list|revoke`, `users` (accounts:
add, remove, accounts; and `set`, users' priority and caps), `workers enrol-code`, `audit`."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import datetime as dt
from typing import Annotated

import typer

from thresher.cli import credentials
from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    connect,
    join,
    listing,
    print_json,
    reporting,
)
from thresher.cli.limits import list_users, set_user

PERSON_ROLES = "admin, wrangler, artist or viewer"
Role = Annotated[
    str | None,
    typer.Option("--role", help=f"{PERSON_ROLES}; for `token create`: at most yours"),
]
Expires = Annotated[
    str | None,
    typer.Option("--expires", metavar="DURATION", help="how long it works: 90m, 12h, 30d"),
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(text: str | None) -> float | None:
    """'30d' -> seconds; None stays None; BadParameter naming --expires if malformed."""
    if text is None:
        return None
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a duration (90m, 12h, 30d)", param_hint="--expires"
        ) from None
    if value <= 0:
        raise typer.BadParameter("must be positive", param_hint="--expires")
    return value


def when(at: float | None) -> str:
    if at is None:
        return "-"
    return dt.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


# -- login ----------------------------------------------------------------------------------


def login(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    ca_file: Annotated[
        str | None,
        typer.Option("--ca-file", envvar="THRESHER_CA_FILE", help="CA of an https controller"),
    ] = None,
) -> None:
    """Store a controller URL and token (asked for, hidden, when not given) for later
    commands, in a file only you can read (0600); checks the token first."""
    if not token:
        token = typer.prompt("token", hide_input=True).strip()
    from thresher.client import Client

    with reporting(url), Client(url, token, ca_file=ca_file) as client:
        me = client.me()
    where = credentials.save(credentials.Login(url, token, ca_file))
    typer.echo(f"logged in to {url} as {me.name} ({me.role}); token kept in {where}")


def logout() -> None:
    """Forget the stored token (it still works until revoked: `thresher token revoke`)."""
    typer.echo("logged out" if credentials.forget() else "not logged in")


# -- tokens ---------------------------------------------------------------------------------


def create_token(
    name: Annotated[
        str | None,
        typer.Argument(metavar="[NAME]", help="Admins: whose token (else your own)."),
    ] = None,
    role: Role = None,
    label: Annotated[str, typer.Option("--label", help="what the token is for")] = "",
    expires: Expires = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a token and print it; it is shown this once and stored hashed. Without NAME it
    is yours (at most your role); with NAME (admins) it is NAME's, of --role (also enrol)."""
    life = seconds(expires)
    with connect(url, token) as client:
        if name is None:
            created = client.create_own_token(label, role=role, expires_in_s=life)
        else:
            created = client.create_token(  # type: ignore[assignment]
                name, role or "artist", label=label or None, expires_in_s=life
            )
    if as_json:
        print_json(created)
    else:
        typer.echo(created.token)


def list_tokens(
    everyone: Annotated[bool, typer.Option("--all", help="everyone's (admins)")] = False,
    revoked: Annotated[bool, typer.Option("--revoked", help="revoked ones too")] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List your tokens (never their secrets)."""
    with connect(url, token) as client:
        found = client.tokens(everyone=everyone, revoked=revoked)
    listing(
        found,
        as_json,
        ("id", "name", "role", "label", "created", "expires", "revoked"),
        lambda t: (
            str(t.id),
            t.name,
            t.role,
            t.label or "-",
            when(t.created_at),
            when(t.expires_at),
            "yes" if t.revoked else "",
        ),
    )


def revoke_token(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="From `thresher token list`.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke a token: refused from its next request on, on every controller."""
    with connect(url, token) as client:
        client.revoke_token(token_id)
    typer.echo(f"token {token_id}: revoked")


# -- users ----------------------------------------------------------------------------------


def add_user(
    name: Annotated[str, typer.Argument(metavar="NAME", help="User name (owns their jobs).")],
    role: Role = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="a group (repeat)")
    ] = None,
    with_token: Annotated[
        bool, typer.Option("--token-out", help="also create a token for them and print it")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a user or change its role and groups (admins); its tokens follow the new role."""
    with connect(url, token) as client:
        account = client.put_account(name, role=role or "artist", groups=group or [])
        issued = client.create_token(name, account.role) if with_token else None
    if as_json:
        print_json(account)
    else:
        typer.echo(f"user {account.name}: {account.role}, groups {join(account.groups)}")
    if issued is not None:
        typer.echo(issued.token)


def remove_user(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Disable a user and revoke all its tokens (admins); its jobs stay."""
    with connect(url, token) as client:
        client.remove_account(name)
    typer.echo(f"user {name}: removed, tokens revoked")


def list_accounts(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List users with their role and groups (wranglers, admins)."""
    with connect(url, token) as client:
        found = client.accounts()
    listing(
        found,
        as_json,
        ("name", "role", "groups", "disabled"),
        lambda a: (a.name, a.role, join(a.groups), "yes" if a.disabled else ""),
    )


def whoami(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Who your token names: user, role, groups."""
    with connect(url, token) as client:
        me = client.me()
    if as_json:
        print_json(me)
    else:
        typer.echo(f"{me.name} ({me.role}), groups {join(me.groups)}")


# -- enrolment codes ------------------------------------------------------------------------


def enrol_code(
    expires: Expires = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Make a one-time code a worker enrols with (`thresher worker --code CODE`); used once."""
    with connect(url, token) as client:
        made = client.create_enrol_code(ttl_s=seconds(expires))
    if as_json:
        print_json(made)
    else:
        typer.echo(made.code)
        typer.echo(f"(code {made.id}, usable once until {when(made.expires_at)})", err=True)


def enrol_codes(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List enrolment codes (never the codes themselves)."""
    with connect(url, token) as client:
        found = client.enrol_codes()
    listing(
        found,
        as_json,
        ("id", "by", "created", "expires", "used", "by worker", "revoked"),
        lambda c: (
            str(c.id),
            c.created_by,
            when(c.created_at),
            when(c.expires_at),
            when(c.used_at),
            c.used_by or "-",
            "yes" if c.revoked else "",
        ),
    )


def revoke_enrol_code(
    code_id: Annotated[int, typer.Argument(metavar="ID")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke an enrolment code that was not used yet."""
    with connect(url, token) as client:
        client.revoke_enrol_code(code_id)
    typer.echo(f"enrolment code {code_id}: revoked")


# -- audit ----------------------------------------------------------------------------------


def audit(
    actor: Annotated[str | None, typer.Option("--actor", help="only this user's")] = None,
    contains: Annotated[str | None, typer.Option("--grep", help="in action or object")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Who did what to which object and when, newest first (wranglers, admins)."""
    with connect(url, token) as client:
        found = client.audit(actor=actor, contains=contains, limit=limit)
    listing(
        found,
        as_json,
        ("when", "who", "role", "action", "object", "status"),
        lambda e: (when(e.at), e.actor, e.role, e.action, e.object, str(e.status)),
    )


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.command("audit")(audit)
    token_app = typer.Typer(name="token", help="Bearer tokens.", no_args_is_help=True)
    token_app.command("create")(create_token)
    token_app.command("list")(list_tokens)
    token_app.command("revoke")(revoke_token)
    app.add_typer(token_app)
    users_app = typer.Typer(name="users", help="Users: accounts (role, groups), priority and caps.")
    users_app.callback(invoke_without_command=True)(list_users)
    users_app.command("set")(set_user)
    users_app.command("add")(add_user)
    users_app.command("remove")(remove_user)
    users_app.command("accounts")(list_accounts)
    app.add_typer(users_app)


def register_workers(workers_app: typer.Typer) -> None:
    """`workers enrol-code`, `workers enrol-codes`, `workers revoke-code`."""
    workers_app.command("enrol-code")(enrol_code)
    workers_app.command("enrol-codes")(enrol_codes)
    workers_app.command("revoke-code")(revoke_enrol_code)
