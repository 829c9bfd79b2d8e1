"""Job attachments sent by `deadline bundle submit`: PutObject and the multipart upload boto3
uses for a file over its threshold (8 MiB). Thresher reads a job's inputs where they are
(shared storage, or its own file sync between sites), so what is sent is checked and dropped:
an input manifest must decode, a data object's xxh128 must be its name (a multipart upload's
parts are bounded, not hashed: they are not kept together). Nothing is stored.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response

from thresher.controller.routes.deadline.outputs import HASH_ALG, hash_data
from thresher.controller.routes.deadline.s3 import (
    _DATA_KEY,
    _NS,
    _XML,
    BUCKET,
    MANIFESTS,
    S3_ERRORS,
    QueueCaller,
    S3Error,
    XmlResponse,
)

#: Largest PutObject body, or multipart upload part, taken.
MAX_PUT = 64 * 2**20
#: Parts of a multipart upload at most (S3's own limit).
MAX_PARTS = 10_000

router = APIRouter(prefix="/deadline-s3", tags=["deadline"], responses=S3_ERRORS)


def _key_taken(bucket: str, key: str) -> bool:
    """Whether `key` is one an upload may name; True for a data object."""
    if bucket != BUCKET:
        raise S3Error(404, "NoSuchBucket", f"the only bucket here is {BUCKET!r}")
    if _DATA_KEY.match(key) is not None:
        return True
    if key.startswith(MANIFESTS) and "/Inputs/" in key:
        return False
    raise S3Error(403, "AccessDenied", f"Thresher takes only input manifests and data: {key}")


async def _body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_PUT:
        raise S3Error(400, "EntityTooLarge", f"body: at most {MAX_PUT} bytes")
    return body


def _etag(body: bytes) -> dict[str, str]:
    return {"etag": f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'}


@router.put("/{bucket}/{key:path}", response_class=XmlResponse)
async def put_object(bucket: str, key: str, request: Request, caller: QueueCaller) -> Response:
    """PutObject, or UploadPart (`?partNumber=N&uploadId=ID`): checked, then dropped."""
    data = _key_taken(bucket, key)
    query = request.query_params
    body = await _body(request)
    if "uploadId" in query or "partNumber" in query:
        part = query.get("partNumber", "")
        if not data or not part.isdigit() or not 1 <= int(part) <= MAX_PARTS:
            raise S3Error(400, "InvalidArgument", f"partNumber: 1 to {MAX_PARTS}, for data")
        return XmlResponse(status_code=200, headers=_etag(body))
    if query:
        raise S3Error(400, "InvalidArgument", f"PutObject takes no {sorted(query)}")
    if data:
        expected = key.rsplit("/", 1)[1].split(".", 1)[0]
        if hash_data(body) != expected:
            raise S3Error(400, "BadDigest", f"the body's {HASH_ALG} hash is not {expected}")
    else:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict) or "manifestVersion" not in document:
            raise S3Error(400, "InvalidArgument", "an input manifest must be one")
    return XmlResponse(status_code=200, headers=_etag(body))


@router.post("/{bucket}/{key:path}", response_class=XmlResponse)
async def multipart(bucket: str, key: str, request: Request, caller: QueueCaller) -> Response:
    """CreateMultipartUpload (`?uploads`) and CompleteMultipartUpload (`?uploadId=ID`) of a
    data object: answered, nothing kept."""
    if not _key_taken(bucket, key):
        raise S3Error(400, "InvalidRequest", "a manifest is sent in one PutObject")
    query = request.query_params
    await _body(request)
    common = f"<Bucket>{BUCKET}</Bucket><Key>{escape(key)}</Key>"
    if "uploads" in query:
        upload = secrets.token_hex(16)
        body = (
            f'{_XML}<InitiateMultipartUploadResult xmlns="{_NS}">{common}'
            f"<UploadId>{upload}</UploadId></InitiateMultipartUploadResult>"
        )
        return XmlResponse(body.encode())
    if "uploadId" in query:
        body = (
            f'{_XML}<CompleteMultipartUploadResult xmlns="{_NS}"><Location>/{BUCKET}/'
            f'{escape(key)}</Location>{common}<ETag>"{secrets.token_hex(16)}-1"</ETag>'
            "</CompleteMultipartUploadResult>"
        )
        return XmlResponse(body.encode())
    raise S3Error(400, "InvalidRequest", "POST takes ?uploads or ?uploadId (a multipart upload)")


@router.delete("/{bucket}/{key:path}", status_code=204, response_class=XmlResponse)
async def abort_multipart(bucket: str, key: str, request: Request, caller: QueueCaller) -> Response:
    """AbortMultipartUpload (`?uploadId=ID`): nothing was kept. Thresher deletes no object."""
    _key_taken(bucket, key)
    if "uploadId" not in request.query_params:
        raise S3Error(400, "InvalidRequest", "DELETE takes ?uploadId: Thresher deletes no object")
    return Response(status_code=204)
