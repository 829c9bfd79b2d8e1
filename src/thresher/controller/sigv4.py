"""Checking AWS Signature Version 4 on a request (the Deadline Cloud compatible routes).

The client (botocore) signs the canonical request with a key derived from the secret, the date,
the region and the service; the controller derives the same key from the secret it holds for
the access key id and compares signatures in constant time. Pure: the caller passes `now`.

SignatureError carries the AWS error code a client expects:
- IncompleteSignatureException  the Authorization header or X-Amz-Date is missing or malformed
- UnrecognizedClientException   the access key id is not known (raised by the caller)
- InvalidSignatureException     the signature does not match, or the request is too old/new
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)

_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class SignedRequest:
    method: str
    raw_path: str
    """The path as sent, still percent-encoded, without the query."""
    raw_query: str
    headers: Mapping[str, str]
    """Names in lower case."""
    body: bytes


def parse_authorization(header: str | None) -> Authorization:
    match = _AUTH.match((header or "").strip())
    if match is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "the request must carry an 'Authorization: AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...' header (sign it with an access key)",
        )
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError(
            "IncompleteSignatureException",
            "the credential must be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        )
    headers = tuple(match["headers"].split(";"))
    if "host" not in headers:
        raise SignatureError("IncompleteSignatureException", "the Host header must be signed")
    return Authorization(parts[0], parts[1], parts[2], parts[3], headers, match["signature"])


UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def canonical_request(
    request: SignedRequest, signed_headers: tuple[str, ...], *, service: str = ""
) -> str:
    # botocore encodes the already-encoded path once more for every service but S3.
    uri = request.raw_path or "/"
    if service != "s3":
        uri = quote(uri, safe="/~")
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in request.raw_query.split("&") if pair)
    query = "&".join(f"{key}={value}" for key, value in pairs)
    headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed_headers
    )
    payload = hashlib.sha256(request.body).hexdigest()
    if service == "s3" and request.headers.get("x-amz-content-sha256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD  # S3 lets a client leave the body out of the signature
    return "\n".join(
        [request.method.upper(), uri, query, headers, ";".join(signed_headers), payload]
    )


def signing_key(secret: str, auth: Authorization) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (auth.date, auth.region, auth.service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(request: SignedRequest, auth: Authorization, secret: str, amz_date: str) -> str:
    """The signature the client must have made with `secret`."""
    canonical = canonical_request(request, auth.signed_headers, service=auth.service)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = "\n".join([ALGORITHM, amz_date, auth.scope, digest])
    return hmac.new(signing_key(secret, auth), to_sign.encode(), hashlib.sha256).hexdigest()


def verify(request: SignedRequest, auth: Authorization, secret: str, *, now: datetime) -> None:
    """Raise SignatureError unless `auth` signs `request` with `secret`, made near `now`."""
    amz_date = request.headers.get("x-amz-date", "")
    try:
        made = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", "the request needs an X-Amz-Date header"
        ) from None
    if not amz_date.startswith(auth.date):
        raise SignatureError(
            "InvalidSignatureException", "the credential's date is not the request's date"
        )
    if abs(now - made) > MAX_SKEW:
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is more than 15 minutes from the controller's time",
        )
    claimed = request.headers.get("x-amz-content-sha256")
    unsigned = auth.service == "s3" and claimed == UNSIGNED_PAYLOAD
    if claimed and not unsigned and claimed != hashlib.sha256(request.body).hexdigest():
        raise SignatureError("InvalidSignatureException", "the body does not match its hash")
    expected = signature(request, auth, secret, amz_date)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
