"""GIVEN a controller WHEN `thresher subscriptions` and `thresher events` run THEN they add,
show, list and remove subscriptions and list the farm's events, and bad input is refused by
field."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import Invoke


def as_json(cli: Invoke, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_subscriptions_are_added_listed_shown_and_removed(cli: Invoke) -> None:
    added = cli("subscriptions", "add", "https://hooks.example/x", "--events", "job.failed")
    assert added.exit_code == 0, added.output
    assert "secret (shown once" in added.output
    mail = as_json(cli, "subscriptions", "add", "td@studio.example", "--min-failures", "3")
    assert mail["channel"] == "email"
    assert mail["secret"].startswith("whsec_")
    listed = as_json(cli, "subscriptions")
    assert [(s["channel"], s["events"], s["secret"]) for s in listed] == [
        ("webhook", ["job.failed"], None),
        ("email", ["*"], None),
    ]
    shown = as_json(cli, "subscriptions", "show", str(mail["id"]))
    assert shown["min_failures"] == 3
    assert cli("subscriptions", "remove", str(mail["id"])).exit_code == 0
    assert len(as_json(cli, "subscriptions")) == 1


def test_bad_subscriptions_are_refused_naming_the_field(cli: Invoke) -> None:
    unknown = cli("subscriptions", "add", "https://h.example", "--events", "job.exploded")
    assert unknown.exit_code != 0
    assert "job.exploded" in unknown.output
    assert "events" in unknown.output
    bad_mail = cli("subscriptions", "add", "not an address")
    assert bad_mail.exit_code != 0
    assert "target" in bad_mail.output


def test_events_lists_a_submission(cli: Invoke) -> None:
    job = as_json(cli, "submit", "--name", "ev", "--", "true")
    found = as_json(cli, "events", "--job", str(job))
    assert [(e["kind"], e["data"]["job"]) for e in found] == [("job.submitted", "ev")]
    table = cli("events")
    assert "job.submitted" in table.output
