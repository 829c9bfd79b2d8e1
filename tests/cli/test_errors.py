"""GIVEN a missing token, a wrong token or an unreachable controller THEN one clear error line
and a distinct exit status."""

from __future__ import annotations

import socket

from tests.cli.conftest import Invoke


def test_a_missing_token_is_a_clear_error(cli: Invoke) -> None:
    result = cli("jobs", token=None)

    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no token: set THRESHER_TOKEN or pass --token"


def test_the_token_option_overrides_the_environment(cli: Invoke) -> None:
    good = cli("token", "create", "carol").stdout.strip()

    assert cli("jobs", "--token", good, token="thr_wrong").exit_code == 0
    refused = cli("jobs", "--token", "thr_wrong")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: ")


def test_an_unreachable_controller_exits_3() -> None:
    from typer.testing import CliRunner

    from thresher.cli.main import app

    # A bound socket that does not listen: connecting to it is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = CliRunner().invoke(app, ["jobs", "--url", url, "--token", "thr_x"])

    assert result.exit_code == 3
    assert result.stderr.strip() == f"error: cannot reach the controller at {url}"
