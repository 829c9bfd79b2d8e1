"""SigV4 checking: AWS's published `get-vanilla` example verifies, and any change to what was
signed, a wrong secret, an old request or a missing header is refused with the AWS error code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from thresher.controller.sigv4 import (
    SignatureError,
    SignedRequest,
    parse_authorization,
    signature,
    verify,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example key
VANILLA = SignedRequest(
    "GET", "/", "", {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}, b""
)
VANILLA_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    "SignedHeaders=host;x-amz-date, "
    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
)
THEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)


def test_the_published_example_verifies() -> None:
    verify(VANILLA, parse_authorization(VANILLA_AUTH), SECRET, now=THEN)


def _signed(request: SignedRequest) -> str:
    unsigned = parse_authorization(VANILLA_AUTH)
    fresh = signature(request, unsigned, SECRET, request.headers["x-amz-date"])
    return VANILLA_AUTH.replace(unsigned.signature, fresh)


POST = SignedRequest(
    "POST",
    "/deadline/2023-10-12/farms/farm-1/queues/queue-1/jobs",
    "b=2&a=1",
    {"host": "127.0.0.1:8420", "x-amz-date": "20150830T123600Z"},
    b'{"template": "..."}',
)


@pytest.mark.parametrize(
    "tampered",
    [
        replace(POST, body=b'{"template": "!!!"}'),
        replace(POST, raw_path=POST.raw_path.replace("queue-1", "queue-2")),
        replace(POST, raw_query="b=2&a=3"),
        replace(POST, method="PUT"),
        replace(POST, headers={**POST.headers, "host": "elsewhere:8420"}),
    ],
    ids=["body", "path", "query", "method", "host"],
)
def test_any_change_to_what_was_signed_is_refused(tampered: SignedRequest) -> None:
    auth = parse_authorization(_signed(POST))
    verify(POST, auth, SECRET, now=THEN)  # the original passes
    with pytest.raises(SignatureError) as refused:
        verify(tampered, auth, SECRET, now=THEN)
    assert refused.value.code == "InvalidSignatureException"


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError) as refused:
        verify(VANILLA, parse_authorization(VANILLA_AUTH), SECRET + "x", now=THEN)
    assert refused.value.code == "InvalidSignatureException"
    assert "does not match" in refused.value.message


def test_an_old_request_is_refused() -> None:
    with pytest.raises(SignatureError) as refused:
        verify(VANILLA, parse_authorization(VANILLA_AUTH), SECRET, now=THEN + timedelta(minutes=16))
    assert "expired" in refused.value.message


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer abc",
        VANILLA_AUTH.replace("/aws4_request", ""),
        VANILLA_AUTH.replace("host;", ""),
    ],
    ids=["missing", "bearer", "bad-credential", "host-unsigned"],
)
def test_a_malformed_authorization_is_incomplete(header: str | None) -> None:
    with pytest.raises(SignatureError) as refused:
        parse_authorization(header)
    assert refused.value.code == "IncompleteSignatureException"


def test_a_missing_date_is_incomplete() -> None:
    undated = replace(VANILLA, headers={"host": "example.amazonaws.com"})
    with pytest.raises(SignatureError) as refused:
        verify(undated, parse_authorization(VANILLA_AUTH), SECRET, now=THEN)
    assert refused.value.code == "IncompleteSignatureException"


# AWS's documented S3 example (GET Object with a Range): S3 signs the path as sent, encoded once.
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_GET = SignedRequest(
    "GET",
    "/test.txt",
    "",
    {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "x-amz-date": "20130524T000000Z",
    },
    b"",
)
S3_AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
)


def test_the_published_s3_example_verifies() -> None:
    verify(S3_GET, parse_authorization(S3_AUTH), S3_SECRET, now=datetime(2013, 5, 24, tzinfo=UTC))


def test_s3_keeps_the_path_as_sent_and_may_leave_the_body_unsigned() -> None:
    now = datetime(2013, 5, 24, tzinfo=UTC)
    request = replace(
        S3_GET,
        raw_path="/thresher/attachments/a%20b.txt",
        headers={**S3_GET.headers, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
        body=b"anything",
    )
    auth = parse_authorization(S3_AUTH)
    signed = replace(auth, signature=signature(request, auth, S3_SECRET, "20130524T000000Z"))
    verify(request, signed, S3_SECRET, now=now)
    # another service signs the body always: UNSIGNED-PAYLOAD is no hash of it
    other = replace(signed, service="deadline")
    other = replace(other, signature=signature(request, other, S3_SECRET, "20130524T000000Z"))
    with pytest.raises(SignatureError):
        verify(request, other, S3_SECRET, now=now)
