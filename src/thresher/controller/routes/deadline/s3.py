"""Job attachments: the few S3 operations `deadline job download-output` (and `bundle submit`'s
attachment upload) call, answered from the jobs' own files (routes/deadline/outputs.py).

GetQueue names bucket `thresher` and root prefix `attachments`; point boto3's S3 at
`<controller>/deadline-s3` (`AWS_ENDPOINT_URL_S3`, path-style). Every request must be signed
(SigV4, service `s3`) with the queue credentials AssumeQueueRoleForUser gives
(controller/queue_keys.py), which act as their person and only here.

- ListObjectsV2 under `attachments/Manifests/{farm}/{queue}/{job}/`: one output manifest per
  output directory of the job (404 for a job the caller may not see, as Thresher's routes).
- GetObject and HeadObject of that manifest (its asset root in `x-amz-meta-asset-root-json`)
  and of `attachments/Data/{xxh128}.xxh128`, a file listed before for a job the caller may see.
- PutObject and the multipart upload (`bundle submit`'s attachments): s3_uploads.py.
Anything else is a 501 naming the operation.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote
from xml.sax.saxutils import escape

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from thresher.controller import policy
from thresher.controller.auth import Caller
from thresher.controller.farm import Farm
from thresher.controller.routes.deadline.common import (
    FARM_ID,
    QUEUE_ID,
    DeadlineError,
    job_id_in,
    signed_request,
    step_id_out,
)
from thresher.controller.routes.deadline.outputs import (
    HASH_ALG,
    OutputIndex,
    OutputRoot,
    open_unchanged,
    output_dirs,
    served_roots,
)
from thresher.controller.routes.deps import get_farm
from thresher.controller.sigv4 import SignatureError, parse_authorization
from thresher.core.errors import Forbidden, NotFound
from thresher.engines.platforms import local_os

BUCKET = "thresher"
ROOT_PREFIX = "attachments"
SETTINGS = {"s3BucketName": BUCKET, "rootPrefix": ROOT_PREFIX}
MANIFESTS = f"{ROOT_PREFIX}/Manifests/"
DATA = f"{ROOT_PREFIX}/Data/"
_JOB_PREFIX = re.compile(
    rf"^{MANIFESTS}(?P<farm>farm-[0-9a-f]{{32}})/(?P<queue>queue-[0-9a-f]{{32}})/"
    rf"(?P<job>job-[0-9a-f]{{32}})/(?P<rest>.*)$"
)
_DATA_KEY = re.compile(rf"^{DATA}(?P<hash>[0-9a-f]{{32}})(\.{HASH_ALG})?$")
_XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"

_TEXT = {"schema": {"type": "string"}}
#: Errors here are S3's: XML, `<Error><Code>...</Code><Message>...</Message></Error>`.
S3_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": "S3-style error (XML)", "content": {"application/xml": _TEXT}}
    for status in (400, 403, 404, 416, 501, 503)
}
router = APIRouter(prefix="/deadline-s3", tags=["deadline"], responses=S3_ERRORS)


class XmlResponse(Response):
    media_type = "application/xml"


_OBJECT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": _TEXT, "application/json": _TEXT}},
    206: {"description": "a byte range", "content": {"application/octet-stream": _TEXT}},
}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self, head: bool = False) -> Response:
        message = escape(self.message)
        body = f"{_XML}<Error><Code>{self.code}</Code><Message>{message}</Message></Error>"
        return Response(
            b"" if head else body.encode(),
            status_code=self.status,
            media_type="application/xml",
            headers={"x-amz-error-code": self.code},
        )


async def queue_caller(request: Request, farm: Annotated[Farm, Depends(get_farm)]) -> Caller:
    """The person whose queue credentials signed the request, or an S3-style 403."""
    try:
        auth = parse_authorization(request.headers.get("authorization"))
        if auth.service != "s3":
            raise SignatureError("InvalidRequest", "sign requests here for the service 's3'")
        signed = await signed_request(request)
        caller: Caller = await farm.call(farm.access.queue_caller, signed, auth)
    except SignatureError as exc:
        code = "SignatureDoesNotMatch" if exc.code == "InvalidSignatureException" else exc.code
        raise S3Error(403, code, exc.message) from None
    request.state.caller = caller
    route = request.scope.get("route")
    try:
        policy.check(caller, request.method, getattr(route, "path", request.url.path))
    except Forbidden as exc:
        raise S3Error(403, "AccessDenied", exc.message) from None
    return caller


QueueCaller = Annotated[Caller, Depends(queue_caller)]
FarmDep = Annotated[Farm, Depends(get_farm)]


def _index(request: Request) -> OutputIndex:
    state = request.app.state
    if getattr(state, "deadline_outputs", None) is None:
        state.deadline_outputs = OutputIndex()
    index: OutputIndex = state.deadline_outputs
    return index


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _bucket(bucket: str) -> None:
    if bucket != BUCKET:
        raise S3Error(404, "NoSuchBucket", f"the only bucket here is {BUCKET!r}")


def _when(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


async def _job_outputs(
    request: Request, farm: Farm, caller: Caller, job_ref: str
) -> tuple[int, list[OutputRoot]]:
    """The output roots of the job (a 404 when the caller may not see it)."""
    try:
        job = await farm.call(farm.jobs.get, caller, job_id_in(job_ref))
    except (NotFound, DeadlineError):
        raise S3Error(404, "NoSuchKey", f"no job {job_ref} that you may see") from None
    site = await farm.call(farm.sites.main_site)
    volumes = await farm.call(farm.sites.volumes)
    roots = served_roots(volumes, site, local_os())
    index = _index(request)
    found = await anyio.to_thread.run_sync(index.scan, job.id, output_dirs(job), roots)
    return job.id, found


def _manifest_key(prefix: str, job_id: int, number: int, root: str) -> str:
    digest = hashlib.md5(root.encode(), usedforsecurity=False).hexdigest()
    return f"{prefix}{step_id_out(job_id, 0)}/{number:04d}_thresher/{digest}_output"


# -- ListObjectsV2 ----------------------------------------------------------------------------


@router.get("/{bucket}", response_class=XmlResponse)
async def list_objects(
    bucket: str, request: Request, farm: FarmDep, caller: QueueCaller
) -> Response:
    """ListObjectsV2: a job's output manifests."""
    _bucket(bucket)
    query = request.query_params
    if query.get("list-type") != "2":
        raise S3Error(501, "NotImplemented", "Thresher answers ListObjectsV2 only (list-type=2)")
    prefix = query.get("prefix", "")
    if len(prefix) > 1024:
        raise S3Error(400, "InvalidArgument", "prefix: at most 1024 characters")
    contents: list[tuple[str, int, int]] = []
    match = _JOB_PREFIX.match(prefix)
    if match is None or match["rest"]:
        pass  # only a whole job's outputs are listed: a step or a task prefix has none
    else:
        job_id, found = await _job_outputs(request, farm, caller, match["job"])
        for number, root in enumerate(found):
            size = len(root.manifest())
            contents.append(
                (_manifest_key(prefix, job_id, number, root.root), size, root.modified_ns)
            )
    encode = query.get("encoding-type") == "url"
    items = "".join(
        f"<Contents><Key>{escape(quote(key, safe='/-_.~') if encode else key)}</Key>"
        f"<LastModified>{_when(ns).strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified>"
        f'<ETag>"{hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()}"</ETag>'
        f"<Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
        for key, size, ns in contents
    )
    body = (
        f'{_XML}<ListBucketResult xmlns="{_NS}"><Name>{BUCKET}</Name>'
        f"<Prefix>{escape(quote(prefix, safe='/-_.~') if encode else prefix)}</Prefix>"
        f"<KeyCount>{len(contents)}</KeyCount><MaxKeys>1000</MaxKeys>"
        f"{'<EncodingType>url</EncodingType>' if encode else ''}"
        f"<IsTruncated>false</IsTruncated>{items}</ListBucketResult>"
    )
    return XmlResponse(body.encode())


# -- GetObject, HeadObject ----------------------------------------------------------------------


async def _object(
    request: Request, farm: Farm, caller: Caller, key: str
) -> tuple[bytes | BinaryIO, int, int, dict[str, str]]:
    """(the bytes, or the file opened; its size; its mtime in ns; extra headers) of `key`."""
    data = _DATA_KEY.match(key)
    if data is not None:
        for job_id, file in _index(request).where(data["hash"]):
            try:
                await farm.call(farm.jobs.get, caller, job_id)
            except NotFound:
                continue
            stream = await anyio.to_thread.run_sync(open_unchanged, file)
            if stream is not None:
                return stream, file.size, file.mtime_ns, {}
        raise S3Error(404, "NoSuchKey", f"no output file of a job you may see has hash {key}")
    match = _JOB_PREFIX.match(key)
    if match is not None:
        job_id, found = await _job_outputs(request, farm, caller, match["job"])
        prefix = key[: len(key) - len(match["rest"])]
        for number, root in enumerate(found):
            if _manifest_key(prefix, job_id, number, root.root) == key:
                meta = {"x-amz-meta-asset-root-json": json.dumps(root.root)}
                manifest = root.manifest()
                return manifest, len(manifest), root.modified_ns, meta
    raise S3Error(404, "NoSuchKey", f"no object {key}")


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header:
        return None
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or not (match[1] or match[2]):
        raise S3Error(416, "InvalidRange", f"Range {header!r} is not one byte range")
    if match[1]:
        start, end = int(match[1]), int(match[2]) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    end = min(end, size - 1)
    if start > end:
        raise S3Error(416, "InvalidRange", f"Range {header!r} is past the object's {size} bytes")
    return start, end


def _file_part(stream: BinaryIO, start: int, end: int) -> Any:
    def chunks() -> Any:
        with stream:
            stream.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    return chunks()


async def _get_or_head(
    bucket: str, key: str, request: Request, farm: Farm, caller: Caller, head: bool
) -> Response:
    _bucket(bucket)
    body, size, mtime_ns, headers = await _object(request, farm, caller, key)
    try:
        part = _range(request.headers.get("range"), size)
    except S3Error:
        if not isinstance(body, bytes):
            body.close()
        raise
    start, end = part if part else (0, size - 1)
    headers = {
        **headers,
        "last-modified": _when(mtime_ns).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "etag": f'"{_md5(f"{key}{mtime_ns}{size}".encode())}"',
        "accept-ranges": "bytes",
        "content-length": str(max(0, end - start + 1)),
    }
    status = 200
    if part:
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    if head:
        if not isinstance(body, bytes):
            body.close()
        return Response(status_code=status, headers=headers)
    if isinstance(body, bytes):  # a manifest
        part_of = body[start : end + 1]
        kind = "application/json" if status == 200 else "application/octet-stream"
        return Response(part_of, status_code=status, headers=headers, media_type=kind)
    return StreamingResponse(
        _file_part(body, start, end),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


@router.get("/{bucket}/{key:path}", responses=_OBJECT)
async def get_object(
    bucket: str, key: str, request: Request, farm: FarmDep, caller: QueueCaller
) -> Response:
    """GetObject: an output manifest or an output file by its hash."""
    head = request.method == "HEAD"
    return await _get_or_head(bucket, key, request, farm, caller, head=head)


@router.head("/{bucket}/{key:path}", include_in_schema=False)
async def head_object(
    bucket: str, key: str, request: Request, farm: FarmDep, caller: QueueCaller
) -> Response:
    return await _get_or_head(bucket, key, request, farm, caller, head=True)


@router.api_route("/{path:path}", methods=["POST", "DELETE", "PATCH"], include_in_schema=False)
async def unimplemented(path: str, request: Request, caller: QueueCaller) -> Response:
    """Any other S3 operation: refused, naming it where it is one the CLI might call."""
    query = request.query_params
    name = {"POST": "PostObject", "DELETE": "DeleteObject"}.get(request.method, request.method)
    if "delete" in query:
        name = "DeleteObjects"
    raise S3Error(
        501,
        "NotImplemented",
        f"Thresher does not implement the S3 operation {name} (see docs/deadline.md)",
    )


def install(app: FastAPI) -> None:
    """Answer this router's errors the S3 way (XML)."""

    async def s3_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, S3Error)
        return exc.response(head=request.method == "HEAD")

    app.add_exception_handler(S3Error, s3_error)


__all__ = ["FARM_ID", "QUEUE_ID", "SETTINGS", "install", "router"]
