"""GIVEN a missing token, a wrong token, an unreachable controller or one whose certificate is
not trusted THEN one clear error line and a distinct exit status."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke
from typer.testing import CliRunner

from thresher.cli.main import app


def test_a_missing_token_is_a_clear_error(cli: Invoke) -> None:
    result = cli("jobs", token=None)

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: no token: run `thresher login`, set THRESHER_TOKEN or pass --token"
    )


def test_the_token_option_overrides_the_environment(cli: Invoke) -> None:
    good = cli("token", "create", "carol").stdout.strip()

    assert cli("jobs", "--token", good, token="thr_wrong").exit_code == 0
    refused = cli("jobs", "--token", "thr_wrong")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: ")


def test_an_unreachable_controller_exits_3() -> None:
    # A bound socket that does not listen: connecting to it is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        result = CliRunner().invoke(app, ["jobs", "--url", url, "--token", "thr_x"])

    assert result.exit_code == 3
    assert result.stderr.strip() == f"error: cannot reach the controller at {url}"


@dataclass(frozen=True)
class TlsServer:
    url: str
    certificate: Path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    """An https:// server on 127.0.0.1 with a self-signed certificate; it answers any request
    with an empty job list."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make = ["openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    make += ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    make += ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(make, check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    body = json.dumps({"jobs": []}).encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    answer += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            # A refused handshake raises here too.
            with (
                conn,
                contextlib.suppress(OSError),
                context.wrap_socket(conn, server_side=True) as tls,
            ):
                tls.recv(65536)
                tls.sendall(answer)

    thread = threading.Thread(target=serve, name="tls-server", daemon=True)
    thread.start()
    try:
        yield TlsServer(f"https://127.0.0.1:{listener.getsockname()[1]}", cert)
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the server thread
        listener.close()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the TLS server did not stop"


def test_a_controller_with_an_untrusted_certificate_is_not_talked_to(tls_server: TlsServer) -> None:
    args = ["jobs", "--url", tls_server.url, "--token", "thr_x"]

    refused = CliRunner().invoke(app, args)
    trusted = CliRunner().invoke(app, args, env={"SSL_CERT_FILE": str(tls_server.certificate)})

    assert refused.exit_code == 3
    assert refused.stderr.strip() == f"error: cannot reach the controller at {tls_server.url}"
    assert trusted.exit_code == 0, trusted.output
