"""`thresher sites` (list, set, delete) and `thresher volumes` (list, set, delete): the places
a farm spans and the storage roots a share path resolves to there."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    add_row,
    connect,
    listing,
    print_json,
    stdout,
    table,
)

SiteName = Annotated[str, typer.Argument(metavar="NAME", help="Site name.", show_default=False)]
VolumeName = Annotated[str, typer.Argument(metavar="NAME", help="Volume name.", show_default=False)]


def list_sites(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List sites (declared, or named by a worker) with their file service and workers."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.sites()
    listing(
        found,
        as_json,
        ("name", "main", "workers", "file service", "cap B/s", "streams", "description"),
        lambda s: (
            s.name,
            "yes" if s.main else "",
            str(s.workers),
            s.file_service_url or "-",
            str(s.bandwidth_bps or "-"),
            str(s.parallel_streams),
            s.description,
        ),
    )


def set_site(
    name: SiteName,
    main: Annotated[bool, typer.Option("--main", help="Outputs go back here.")] = False,
    file_service: Annotated[
        str | None, typer.Option("--file-service", help="Its file service: http://host:port.")
    ] = None,
    bandwidth: Annotated[
        int | None, typer.Option("--bandwidth", min=1, help="Cap on its transfers, bytes/s.")
    ] = None,
    streams: Annotated[int, typer.Option("--streams", min=1, max=64, help="Parallel streams.")] = 4,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="A file holding its file service's token."),
    ] = None,
    description: Annotated[str, typer.Option("--description", help="What it is.")] = "",
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Declare a site or change it (admins and wranglers)."""
    with connect(url, token) as client:
        site = client.set_site(
            name,
            main=main,
            file_service_url=file_service,
            bandwidth_bps=bandwidth,
            parallel_streams=streams,
            description=description,
            file_service_token=token_file.read_text().strip() if token_file else None,
        )
    if as_json:
        print_json(site)
        return
    service = site.file_service_url or "no file service"
    typer.echo(f"site {site.name}: {'main, ' if site.main else ''}{service}")


def delete_site(name: SiteName, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Delete a site's declaration (its workers keep running)."""
    with connect(url, token) as client:
        client.delete_site(name)
    typer.echo(f"site {name}: deleted")


def list_volumes(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List volumes with their root per site and OS."""
    if ctx.invoked_subcommand is not None:
        return
    with connect(url, token) as client:
        found = client.volumes()
    if as_json:
        print_json(found)
        return
    rows = table("name", "site", "os", "root")
    for v in found:
        for site, by_os in sorted(v.roots.items()):
            for os_name, root in sorted(by_os.items()):
                add_row(rows, v.name, site, os_name, root)
    stdout().print(rows)


def parse_roots(given: list[str]) -> dict[str, dict[str, str]]:
    """``SITE[:OS]=ROOT`` pairs as ``{site: {os: root}}`` (OS ``*`` when left out)."""
    roots: dict[str, dict[str, str]] = {}
    for item in given:
        key, sep, root = item.partition("=")
        if not sep or not key or not root:
            raise typer.BadParameter(f"{item!r}: give SITE[:OS]=ROOT", param_hint="--root")
        site, _, os_name = key.partition(":")
        roots.setdefault(site, {})[os_name or "*"] = root
    return roots


def set_volume(
    name: VolumeName,
    root: Annotated[
        list[str],
        typer.Option(
            "--root", help="SITE[:OS]=ROOT, e.g. hq:linux=/mnt/proj (repeat; OS left out: any)."
        ),
    ],
    description: Annotated[str, typer.Option("--description", help="What it holds.")] = "",
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a volume or set its roots (admins and wranglers): every root is replaced."""
    with connect(url, token) as client:
        volume = client.set_volume(name, parse_roots(root), description=description)
    if as_json:
        print_json(volume)
        return
    places = ", ".join(f"{s}:{o}={r}" for s, by in volume.roots.items() for o, r in by.items())
    typer.echo(f"volume {volume.name}: {places}")


def delete_volume(
    name: VolumeName, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Delete a volume; share paths naming it are refused from then on."""
    with connect(url, token) as client:
        client.delete_volume(name)
    typer.echo(f"volume {name}: deleted")


def job_sites(
    job_id: Annotated[int, typer.Argument(metavar="JOB", help="Job id.")],
    site: Annotated[
        str | None, typer.Option("--site", help="Change the job's settings at this site.")
    ] = None,
    download: Annotated[
        bool | None, typer.Option("--download/--no-download", help="Sync inputs there first.")
    ] = None,
    upload: Annotated[
        bool | None, typer.Option("--upload/--no-upload", help="Send outputs back after tasks.")
    ] = None,
    speed_limit: Annotated[
        int | None, typer.Option("--speed-limit", min=1, help="Bytes per second at most.")
    ] = None,
    parallel_files: Annotated[
        int | None, typer.Option("--parallel-files", min=1, max=64, help="Files at once.")
    ] = None,
    clear_output: Annotated[
        bool | None,
        typer.Option("--clear-output/--keep-output", help="Empty the output folder first."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """A job's sync at each site (settings, state, bytes); --site changes its settings there."""
    settings = {
        "download": download,
        "upload": upload,
        "speed_limit_bps": speed_limit,
        "parallel_files": parallel_files,
        "clear_output": clear_output,
    }
    with connect(url, token) as client:
        if site is not None:
            found = client.set_job_site(job_id, site, **settings)
        else:
            found = client.job_sites(job_id)
    if as_json:
        print_json(found)
        return
    rows = table("site", "sync", "bytes", "download", "upload", "limit B/s", "files", "message")
    for r in found.sites:
        add_row(
            rows,
            r.site,
            r.sync_state,
            f"{r.bytes_done}/{r.bytes_total}",
            "yes" if r.download else "no",
            "yes" if r.upload else "no",
            str(r.speed_limit_bps or "-"),
            str(r.parallel_files),
            r.message or "",
        )
    stdout().print(rows)


def register(app: typer.Typer) -> None:
    sites_app = typer.Typer(name="sites", help="Sites: the places the farm spans.")
    sites_app.callback(invoke_without_command=True)(list_sites)
    sites_app.command("set")(set_site)
    sites_app.command("delete")(delete_site)
    sites_app.command("job")(job_sites)
    app.add_typer(sites_app)
    volumes_app = typer.Typer(name="volumes", help="Volumes: storage roots per site and OS.")
    volumes_app.callback(invoke_without_command=True)(list_volumes)
    volumes_app.command("set")(set_volume)
    volumes_app.command("delete")(delete_volume)
    app.add_typer(volumes_app)
