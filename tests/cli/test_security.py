"""GIVEN an admin and a running controller WHEN people are added, log in, make, list and revoke
tokens, make enrolment codes and read the audit trail from the CLI THEN each does what it
says, the login file is private, and a revoked token is refused on its next use."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from tests.cli.conftest import Invoke, RunningController


def test_a_user_logs_in_makes_lists_and_revokes_tokens(
    cli: Invoke, controller: RunningController
) -> None:
    added = cli("users", "add", "alice", "--role", "artist", "-g", "show1", "--token-out")
    assert added.exit_code == 0, added.stderr
    heading, alice_token = added.stdout.strip().splitlines()
    assert heading == "user alice: artist, groups show1"

    logged = cli("login", token=alice_token)  # --token from THRESHER_TOKEN
    assert logged.exit_code == 0, logged.stderr
    stored = Path(logged.stdout.strip().rsplit(" ", 1)[1])
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700

    assert cli("whoami", token=None).stdout.strip() == "alice (artist), groups show1"
    made = cli("token", "create", "--label", "render-script", "--expires", "30d", token=None)
    assert made.exit_code == 0, made.stderr
    script_token = made.stdout.strip()
    listed = json.loads(cli("token", "list", "--json", token=None).stdout)
    [entry] = [t for t in listed if t["label"] == "render-script"]
    assert "token" not in entry
    assert entry["expires_at"] is not None

    assert cli("jobs", token=script_token).exit_code == 0
    revoked = cli("token", "revoke", str(entry["id"]), token=None)
    assert revoked.exit_code == 0, revoked.stderr
    refused = cli("jobs", token=script_token)
    assert refused.exit_code == 2
    assert "revoked" in refused.stderr

    assert cli("logout", token=None).stdout.strip() == "logged out"
    assert not stored.exists()


def test_enrolment_codes_accounts_and_the_audit_trail_from_the_cli(cli: Invoke) -> None:
    code = cli("workers", "enrol-code", "--expires", "2h")
    assert code.exit_code == 0, code.stderr
    assert len(code.stdout.strip()) == 9
    codes = json.loads(cli("workers", "enrol-codes", "--json").stdout)
    assert [(c["used_at"], c["revoked"]) for c in codes] == [(None, False)]
    assert cli("workers", "revoke-code", str(codes[0]["id"])).exit_code == 0

    assert cli("users", "add", "wendy", "--role", "wrangler").exit_code == 0
    accounts = json.loads(cli("users", "accounts", "--json").stdout)
    assert {(a["name"], a["role"]) for a in accounts} == {("wendy", "wrangler")}

    trail = json.loads(cli("audit", "--json").stdout)
    actions = [e["action"] for e in trail]
    assert "PUT /api/v1/accounts/{name}" in actions
    assert "POST /api/v1/enrol-codes" in actions
    assert {e["actor"] for e in trail} == {"admin"}
