"""A controller served in a thread of the test's process (no subprocess) with one token per
identity the permission tests ask about, and jobs owned by some of them.

Identities: admin, wrangler, artist (alice, in group show1), viewer (vera, in show1), worker
(an enrolled worker w1), enrolment (an enrol token), none (no token), expired (a token past
its expiry) and revoked (a revoked token). bob is an artist in no group: his job is "someone
else's" for everyone but wranglers and admins."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.controller.sigv4 import SignedRequest, parse_authorization, signature
from thresher.testing import FakeClock, serve_in_thread

IDENTITIES = (
    "admin",
    "wrangler",
    "artist",
    "viewer",
    "worker",
    "enrolment",
    "none",
    "expired",
    "revoked",
)
#: Who each identity is in the farm (jobs are owned by user names).
NAMES = {"admin": "admin", "wrangler": "wendy", "artist": "alice", "viewer": "vera"}
REGION = "us-west-2"
TEMPLATE = """
specificationVersion: jobtemplate-2023-09
name: matrix
steps:
- name: One
  script:
    actions:
      onRun: {command: "true"}
"""


@dataclass
class SecurityFarm:
    """The app, an admin client, each identity's token and access key, and helpers."""

    http: httpx.Client
    url: str
    clock: FakeClock
    admin: Client
    tokens: dict[str, str | None] = field(default_factory=dict)
    access_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    user_tokens: dict[str, str] = field(default_factory=dict)
    _serial: int = 0

    def client(self, token: str | None) -> Client:
        """A Client over the in-process app (the real client, no network)."""
        return Client(self.url, token)

    def unique(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial}"

    def token_of(self, user: str) -> str:
        """A token of `user` (made once, with the user's role)."""
        if user not in self.user_tokens:
            role = {"admin": "admin", "wendy": "wrangler"}.get(user, "artist")
            self.user_tokens[user] = self.admin.create_token(user, role).token
        return self.user_tokens[user]

    def submit_as(self, user: str) -> int:
        """A fresh (paused) job owned by `user`."""
        with self.client(self.token_of(user)) as c:
            return c.submit(self.unique("job"), ["true"], frames="1-2", paused=True).id

    def submit_template_as(self, user: str) -> int:
        """A fresh (paused) OpenJD job owned by `user`."""
        with self.client(self.token_of(user)) as c:
            return c.submit_template(TEMPLATE, paused=True).id

    def signed_headers(
        self,
        identity: str,
        method: str,
        path: str,
        body: bytes,
        *,
        queue_key: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """SigV4 headers for `identity`'s access key (people only), or for the queue
        credentials AssumeQueueRoleForUser gave (`queue_key`, signed for S3)."""
        key_id, secret = self.access_keys[identity]
        service, extra = "deadline", {}
        if queue_key is not None:
            key_id, secret = queue_key["accessKeyId"], queue_key["secretAccessKey"]
            service, extra = "s3", {"x-amz-security-token": queue_key["sessionToken"]}
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {"host": self.url.split("://", 1)[1], "x-amz-date": amz_date}
        credential = f"{key_id}/{amz_date[:8]}/{REGION}/{service}/aws4_request"
        unsigned = parse_authorization(
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, "
            f"Signature={'0' * 64}"
        )
        request = SignedRequest(method, path, "", headers, body)
        sig = signature(request, unsigned, secret, amz_date)
        return {
            **extra,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
            "authorization": f"AWS4-HMAC-SHA256 Credential={credential}, "
            f"SignedHeaders=host;x-amz-date, Signature={sig}",
        }

    def queue_key(self, identity: str) -> dict[str, str]:
        """Queue credentials for `identity` (AssumeQueueRoleForUser)."""
        path = "/deadline/2023-10-12/farms/farm-1/queues/queue-1/user-roles"
        headers = self.signed_headers(identity, "GET", path, b"")
        answer = self.http.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        credentials: dict[str, str] = answer.json()["credentials"]
        return credentials

    def bearer(self, identity: str) -> dict[str, str]:
        token = self.tokens[identity]
        return {"authorization": f"Bearer {token}"} if token else {}

    def basic(self, identity: str) -> dict[str, str]:
        token = self.tokens[identity] or ""
        encoded = base64.b64encode(f"thresher:{token}".encode()).decode()
        return {"authorization": f"Basic {encoded}"}


def register_body(name: str) -> dict[str, Any]:
    return {"name": name, "hostname": name, "os": "linux", "cores": 2, "ram_bytes": 2**30}


def security_farm(tmp_path: Path) -> Iterator[SecurityFarm]:
    """Serve the farm; the caller uses it as a generator fixture's body."""
    clock = FakeClock()
    settings = ControllerSettings(data_dir=tmp_path / "data")
    with (
        serve_in_thread(settings, clock=clock) as served,
        httpx.Client(base_url=served.url, timeout=30) as http,
        Client(served.url, served.admin_token) as admin,
    ):
        farm = SecurityFarm(http, served.url, clock, admin)
        _populate(farm, served.admin_token)
        yield farm


def _populate(farm: SecurityFarm, admin_token: str) -> None:
    admin = farm.admin
    admin.put_account("alice", role="artist", groups=["show1"])
    admin.put_account("vera", role="viewer", groups=["show1"])
    admin.put_account("wendy", role="wrangler")
    admin.put_account("bob", role="artist")
    farm.tokens["admin"] = farm.user_tokens["admin"] = admin_token
    for identity in ("wrangler", "artist", "viewer"):
        farm.tokens[identity] = admin.create_token(NAMES[identity], identity).token
        farm.user_tokens.setdefault(NAMES[identity], farm.tokens[identity] or "")
    for identity in ("admin", "wrangler", "artist", "viewer"):
        made = admin.create_access_key(NAMES[identity], identity)
        farm.access_keys[identity] = (made["access_key_id"], made["secret_access_key"])
    farm.tokens["enrolment"] = admin.create_token("enroller", "enrol").token
    answer = farm.http.post(
        "/api/v1/agent/register",
        json={**register_body("w1"), "lanes": 2},
        headers=farm.bearer("enrolment"),
    )
    assert answer.status_code == 200, answer.text
    farm.tokens["worker"] = answer.json()["token"]
    farm.tokens["none"] = None
    farm.tokens["expired"] = admin.create_token("carol", "artist", expires_in_s=60).token
    revoked = admin.create_token("dave", "artist")
    admin.revoke_token(revoked.id)
    farm.tokens["revoked"] = revoked.token
    farm.clock.advance(120)  # carol's token is past its expiry now
