"""The S3 object store (production, DESIGN §7), for AWS and for S3 servers such as Ceph.

Every object is written as a multipart upload started by `open_writer`, so the caller can
record the upload id at once and a crashed writer's parts can be aborted by that id. Reads
are one ranged GET streamed in chunks. `init_buckets` (for `sealdrop storage init`) lives in
`app.storage.s3_setup` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.response import StreamingBody

from app.storage.base import (
    ObjectInfo,
    ObjectMissing,
    ObjectStore,
    PendingUpload,
    StorageError,
    check_key,
    check_prefix,
    check_range,
)
from app.storage.s3_client import MAX_ATTEMPTS, READ_TIMEOUT_SECONDS, S3Calls
from app.storage.s3_direct import S3Direct
from app.storage.s3_setup import init_buckets
from app.storage.s3_writer import S3Writer, abort_multipart
from app.storage.urls import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

__all__ = ["S3Store", "S3Writer", "init_buckets"]


class S3Store(ObjectStore):
    """Objects in one bucket."""

    # An unfinished multipart upload cannot be read: uploads are staged as pieces, each
    # completed as soon as it is whole, for a worker in another process to follow.
    follows_pieces = True

    def __init__(
        self,
        location: S3Location,
        *,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.location = location
        self.bucket = location.bucket
        self._s3 = S3Calls(location, read_timeout=read_timeout, max_attempts=max_attempts)
        self._signers: dict[str, S3Calls] = {}

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self.location.endpoint_url!r})"

    async def open_writer(self, key: str, *, size_hint: int | None = None) -> S3Writer:
        """Start a multipart upload for `key`; its id is the writer's `upload_id`."""
        return await S3Writer.start(self._s3, check_key(key), size_hint)

    async def read(
        self,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        chunk_size: int = 1 << 20,
    ) -> AsyncGenerator[bytes, None]:
        """One GET with a Range header, its body read in `chunk_size` chunks in threads."""
        check_range(start, length, chunk_size)
        check_key(key)
        if length == 0:
            if await self.size(key) is None:
                raise ObjectMissing(f"no object {key!r}")
            return
        response = await self._get(key, start, length)
        if response is None:
            return  # the range starts past the end of the object
        body = response["Body"]
        try:
            remaining = response["ContentLength"] if length is None else length
            while remaining > 0:
                want = min(chunk_size, remaining)
                chunk = await self._s3.run(f"read of {key!r}", partial(_fill, body, want))
                if chunk:
                    yield chunk
                if len(chunk) < want:
                    return
                remaining -= len(chunk)
        finally:
            # Closing drops the connection of an unfinished body; it does not block.
            body.close()

    async def size(self, key: str) -> int | None:
        """HEAD the object: its ContentLength, or None if it does not exist."""
        try:
            head = await self._s3.call(
                f"HEAD of {check_key(key)!r}",
                self._s3.client.head_object,
                Bucket=self.bucket,
                Key=key,
            )
        except ObjectMissing:
            return None
        return head["ContentLength"]

    async def delete(self, key: str) -> None:
        """DELETE the object (S3 answers success for a missing key too)."""
        await self._s3.call(
            f"delete of {check_key(key)!r}",
            self._s3.client.delete_object,
            Bucket=self.bucket,
            Key=key,
        )

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """ListObjectsV2 under `prefix`, page by page."""
        paginator = self._s3.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix))
        async for page in self._pages("list", iter(pages)):
            for item in page.get("Contents", []):
                modified = item["LastModified"].astimezone(UTC)
                yield ObjectInfo(key=item["Key"], size=item["Size"], modified=modified)

    async def list_pending_uploads(self, prefix: str) -> AsyncIterator[PendingUpload]:
        """ListMultipartUploads under `prefix`, page by page."""
        paginator = self._s3.client.get_paginator("list_multipart_uploads")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=check_prefix(prefix))
        async for page in self._pages("listing of uploads", iter(pages)):
            for upload in page.get("Uploads", []):
                started = upload["Initiated"].astimezone(UTC)
                yield PendingUpload(
                    key=upload["Key"], upload_id=upload["UploadId"], started=started
                )

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one multipart upload; an upload already gone is not an error."""
        await abort_multipart(self._s3, check_key(key), upload_id)

    async def check(self) -> None:
        """HEAD the bucket: reachable, credentials accepted, bucket present."""
        try:
            await self._s3.call(
                "HEAD of the bucket", self._s3.client.head_bucket, Bucket=self.bucket
            )
        except ObjectMissing:
            raise StorageError(f"S3 bucket {self.bucket!r} does not exist", code="404") from None

    def direct(self, public_endpoint: str | None = None) -> S3Direct:
        """Direct (client-written) multipart uploads into this bucket, their URLs presigned
        for `public_endpoint` when clients reach S3 by another name than this process."""
        if public_endpoint is None:
            return S3Direct(self._s3)
        signer = self._signers.get(public_endpoint)
        if signer is None:
            location = replace(self.location, endpoint_url=public_endpoint)
            signer = self._signers[public_endpoint] = S3Calls(location)
        return S3Direct(self._s3, signer)

    async def close(self) -> None:
        """Close the client's connections."""
        self._s3.close()
        for signer in self._signers.values():
            signer.close()

    async def _get(self, key: str, start: int, length: int | None) -> GetObjectOutputTypeDef | None:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            arguments["Range"] = f"bytes={start}-{end}"
        try:
            response = await self._s3.call(
                f"GET of {key!r}", self._s3.client.get_object, **arguments
            )
        except ObjectMissing:
            raise ObjectMissing(f"no object {key!r} in bucket {self.bucket!r}") from None
        except StorageError as exc:
            if exc.code == "InvalidRange":
                return None
            raise
        if "Range" in arguments and not response.get("ContentRange"):
            response["Body"].close()
            raise StorageError(f"S3 server ignored the Range of a GET of {key!r}")
        return response

    async def _pages(self, action: str, pages: Iterator[Any]) -> AsyncIterator[Any]:
        while batch := await self._s3.batches(action, pages, 1):
            yield batch[0]


def _fill(body: StreamingBody, size: int) -> bytes:
    """Read exactly `size` bytes from the body, fewer only at its end."""
    chunk = body.read(size)
    if len(chunk) == size or not chunk:
        return chunk
    parts = [chunk]
    got = len(chunk)
    while got < size and (more := body.read(size - got)):
        parts.append(more)
        got += len(more)
    return b"".join(parts)
