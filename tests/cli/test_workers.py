"""GIVEN a controller without workers WHEN the worker and token commands run THEN ..."""

from __future__ import annotations

import json

from tests.cli.conftest import Invoke


def test_workers_json_is_an_empty_list(cli: Invoke) -> None:
    result = cli("workers", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


def test_workers_table_has_the_headings(cli: Invoke) -> None:
    result = cli("workers")

    assert result.exit_code == 0, result.output
    assert "hostname" in result.stdout


def test_enabling_an_unknown_worker_is_an_error(cli: Invoke) -> None:
    result = cli("workers", "enable", "nobody")

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_token_create_prints_a_token_that_works(cli: Invoke) -> None:
    result = cli("token", "create", "alice")

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token
    assert cli("jobs", "--json", token=token).exit_code == 0


def test_a_user_token_may_not_create_tokens(cli: Invoke) -> None:
    user = cli("token", "create", "bob").stdout.strip()

    result = cli("token", "create", "mallory", "--role", "admin", token=user)

    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_token_create_json_names_the_role(cli: Invoke) -> None:
    result = cli("token", "create", "farmhand", "--role", "enrol", "--json")

    body = json.loads(result.stdout)
    assert (body["name"], body["role"]) == ("farmhand", "enrol")
    assert body["token"]
