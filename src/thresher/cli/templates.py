"""`thresher submit-template` and `thresher submit-bundle`: OpenJD templates as jobs.

A job bundle is a folder as Deadline Cloud's submitters write it: `template.yaml` (or `.json`),
optionally `parameter_values.yaml|json` (`parameterValues: [{name, value}]`) and
`asset_references.yaml|json` (kept with the job; Thresher does not upload files). Queue
parameters in parameter_values (`deadline:priority`, `deadline:maxRetriesPerTask`) become the
job's priority and retries; other `deadline:*` values are ignored.
"""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from thresher.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    connect,
    fail,
    print_json,
    stderr,
    stdout,
)
from thresher.client import InvalidRequest

ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="NAME=VALUE", help="Job parameter value; repeatable."),
]
EnvOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--env", metavar="FILE", help="Environment template to apply; repeatable.", exists=True
    ),
]
PathMappingOption = Annotated[
    Path | None,
    typer.Option(
        "--path-mapping",
        metavar="FILE",
        exists=True,
        help="Path mapping rules (pathmapping-1.0 JSON or YAML) from this machine's paths.",
    ),
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Validate and show the steps; submit nothing.")
]


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs; the value is passed as text, as `openjd run -p` does."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="--param")
        params[name] = value
    return params


def read_document(path: Path) -> Any:
    import yaml  # here, not at the top: only these commands read YAML

    try:
        text = path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        fail(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}")


def path_mapping_rules(path: Path | None) -> list[dict[str, str]] | None:
    if path is None:
        return None
    document = read_document(path)
    rules = document.get("path_mapping_rules") if isinstance(document, dict) else document
    if not isinstance(rules, list):
        fail(f"{path} holds no 'path_mapping_rules' list")
    return [dict(rule) for rule in rules]


def _submit(
    template: str,
    params: Mapping[str, Any],
    *,
    env_files: list[Path],
    fields: dict[str, Any],
    check: bool,
    as_json: bool,
    url: str,
    token: str | None,
) -> None:
    environments = [path.read_text() for path in env_files]
    with connect(url, token) as client:
        try:
            if check:
                summary = client.check_template(
                    template, params, env_templates=environments, **fields
                )
            else:
                job = client.submit_template(template, params, env_templates=environments, **fields)
        except InvalidRequest as exc:
            if not exc.errors:
                raise
            if as_json:
                print_json({"error": exc.code, "message": exc.message, "errors": exc.errors})
            else:
                err = stderr()
                err.print(f"error: {exc.message.split(':', 1)[0]}", style="red", markup=False)
                for issue in exc.errors:
                    where = issue.get("location") or "(template)"
                    err.print(f"  {where}: {issue.get('message')}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    if check:
        if as_json:
            print_json(summary)
            return
        out = stdout()
        out.print(f"{summary.name}: {len(summary.steps)} step(s)", markup=False)
        for step in summary.steps:
            deps = f" after {', '.join(step.dependencies)}" if step.dependencies else ""
            out.print(f"  {step.name}: {step.tasks} task(s){deps}", markup=False)
        return
    if as_json:
        print_json({"id": job.id})
    else:
        typer.echo(job.id)


def submit_template(
    template: Annotated[
        Path, typer.Argument(metavar="TEMPLATE", exists=True, dir_okay=False, help="Job template.")
    ],
    param: ParamOption = None,
    env: EnvOption = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Job name.")] = None,
    priority: Annotated[int, typer.Option("--priority", min=0, max=100)] = 50,
    retries: Annotated[int, typer.Option("--retries", min=0, max=100)] = 3,
    after: Annotated[list[int] | None, typer.Option("--after", metavar="JOB")] = None,
    filters: Annotated[str | None, typer.Option("--filters", help="Job filters.")] = None,
    path_mapping: PathMappingOption = None,
    paused: Annotated[bool, typer.Option("--paused")] = False,
    check: CheckOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Submit an OpenJD job template with parameter values and print the job's id.

    Example: thresher submit-template render.yaml -p Frames=1-10 -p OutputDir=/out
    """
    try:
        text = template.read_text()
    except OSError as exc:
        fail(f"cannot read {template}: {exc.strerror}")
    fields = {
        "name": name,
        "priority": priority,
        "retries": retries,
        "after": after or [],
        "filters": filters,
        "paused": paused,
        "template_dir": str(template.resolve().parent),
        "path_mapping_rules": path_mapping_rules(path_mapping),
    }
    _submit(
        text,
        parse_params(param or []),
        env_files=list(env or []),
        fields=fields,
        check=check,
        as_json=as_json,
        url=url,
        token=token,
    )


def _bundle_file(folder: Path, stem: str, *, required: bool) -> Path | None:
    for suffix in (".yaml", ".yml", ".json"):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    if required:
        fail(f"{folder} has no {stem}.yaml or {stem}.json: not a job bundle")
    return None


def bundle_parameters(document: Any, *, source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(template parameter values, job fields) from a bundle's parameter_values document."""
    if document is None:
        return {}, {}
    entries = document.get("parameterValues") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        fail(f"{source} holds no 'parameterValues' list")
    params: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry:
            fail(f"{source}: every parameterValues entry needs a name and a value")
        name, value = str(entry["name"]), entry.get("value", "")
        if name == "deadline:priority":
            fields["priority"] = int(value)
        elif name == "deadline:maxRetriesPerTask":
            fields["retries"] = int(value)
        elif not name.startswith("deadline:"):
            params[name] = value
    return params, fields


def submit_bundle(
    bundle: Annotated[
        Path, typer.Argument(metavar="DIR", exists=True, file_okay=False, help="Job bundle.")
    ],
    param: ParamOption = None,
    env: EnvOption = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Job name.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", min=0, max=100)] = None,
    after: Annotated[list[int] | None, typer.Option("--after", metavar="JOB")] = None,
    path_mapping: PathMappingOption = None,
    check: CheckOption = False,
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Submit a Deadline-style job bundle folder (template + parameter values + asset
    references); `-p` values override the bundle's."""
    template_path = _bundle_file(bundle, "template", required=True)
    assert template_path is not None
    values_path = _bundle_file(bundle, "parameter_values", required=False)
    params, fields = bundle_parameters(
        read_document(values_path) if values_path else None, source=values_path or bundle
    )
    params.update(parse_params(param or []))
    assets_path = _bundle_file(bundle, "asset_references", required=False)
    assets = read_document(assets_path) if assets_path else None
    if priority is not None:
        fields["priority"] = priority
    fields.update(
        name=name,
        after=after or [],
        template_dir=str(bundle.resolve()),
        asset_references=assets if isinstance(assets, dict) else None,
        path_mapping_rules=path_mapping_rules(path_mapping),
    )
    _submit(
        template_path.read_text(),
        params,
        env_files=list(env or []),
        fields=fields,
        check=check,
        as_json=as_json,
        url=url,
        token=token,
    )


def register(app: typer.Typer) -> None:
    app.command("submit-template", no_args_is_help=True)(submit_template)
    app.command("submit-bundle", no_args_is_help=True)(submit_bundle)
