"""Writing one S3 object as a multipart upload, with bounded memory.

The upload starts when the writer opens, so its id can be recorded before any byte is
sent. Data gathers into one part-sized buffer; a full buffer is uploaded in the background
while the next one fills, and a third part waits for the first to finish: at most two parts
are in memory whatever the object's size. Parts start at 5 MiB, S3's smallest (8 MiB
parts cost a production process 6 MiB more at its peak, and no measurable speed), larger
when the expected size needs it to stay within 10 000 parts, and double every 900 parts so
that an object of unknown size can still reach S3's largest, 5 TiB. Any failure aborts the
upload.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Literal

import anyio

from app.storage.base import ObjectWriter, StorageError
from app.storage.s3_client import MISSING_UPLOAD_CODES, S3Calls

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIB = 1 << 20
MIN_PART_BYTES = 5 * MIB
MAX_PART_BYTES = 5 * 1024 * MIB
MAX_PARTS = 10_000
PARTS_PER_DOUBLING = 900


def first_part_size(size_hint: int | None) -> int:
    """5 MiB, or the whole MiB that fits `size_hint` bytes into at most 10 000 parts."""
    if size_hint is None:
        return MIN_PART_BYTES
    per_part = -(-size_hint // MAX_PARTS)
    return min(MAX_PART_BYTES, max(MIN_PART_BYTES, -(-per_part // MIB) * MIB))


def part_size(first: int, number: int) -> int:
    """The size of part `number` (1-based): `first`, doubled every 900 parts."""
    return min(MAX_PART_BYTES, first << ((number - 1) // PARTS_PER_DOUBLING))


class S3Writer(ObjectWriter):
    """One multipart upload; `upload_id` is S3's id for it."""

    @classmethod
    async def start(cls, s3: S3Calls, key: str, size_hint: int | None) -> S3Writer:
        """CreateMultipartUpload for `key` and return its writer."""
        response = await s3.call(
            f"start of an upload of {key!r}",
            s3.client.create_multipart_upload,
            Bucket=s3.location.bucket,
            Key=key,
        )
        return cls(s3, key, response["UploadId"], first_part_size(size_hint))

    def __init__(self, s3: S3Calls, key: str, upload_id: str, first_part: int) -> None:
        self.upload_id = upload_id
        self.key = key
        self._s3 = s3
        self._first_part = first_part
        self._buffer = bytearray()
        self._next_part = 1
        self._parts: list[CompletedPartTypeDef] = []
        self._in_flight: asyncio.Task[None] | None = None
        self._size = 0
        self._state: Literal["open", "committed", "aborted"] = "open"

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add `data` to the current part, sending each part as it fills."""
        self._require_open()
        view = memoryview(data).cast("B")
        try:
            while view:
                target = part_size(self._first_part, self._next_part)
                room = target - len(self._buffer)
                self._buffer += view[:room]
                view = view[room:]
                if len(self._buffer) == target:
                    await self._send_part()
        except BaseException:
            await self._abort_after_failure()
            raise
        self._size += memoryview(data).nbytes

    async def commit(self) -> int:
        """Send the last part (an empty one if nothing was written) and complete the upload."""
        self._require_open()
        try:
            if self._buffer or self._next_part == 1:
                await self._send_part()
            await self._wait_in_flight()
            await self._s3.call(
                f"completion of an upload of {self.key!r}",
                self._s3.client.complete_multipart_upload,
                Bucket=self._s3.location.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except BaseException:
            await self._abort_after_failure()
            raise
        self._state = "committed"
        return self._size

    async def abort(self) -> None:
        """Abort the multipart upload, after the part in flight (if any) has finished."""
        if self._state != "open":
            return
        self._buffer = bytearray()
        with anyio.CancelScope(shield=True):
            await self._settle_in_flight()
            await abort_multipart(self._s3, self.key, self.upload_id)
        self._state = "aborted"

    def _require_open(self) -> None:
        if self._state != "open":
            raise StorageError(f"the writer of {self.key!r} is already {self._state}")

    async def _send_part(self) -> None:
        if self._next_part > MAX_PARTS:
            raise StorageError(f"{self.key!r} is too large for one multipart upload")
        await self._wait_in_flight()
        number, body = self._next_part, self._buffer
        self._next_part += 1
        self._buffer = bytearray()
        self._in_flight = asyncio.create_task(self._upload_part(number, body))

    async def _upload_part(self, number: int, body: bytearray) -> None:
        response = await self._s3.call(
            f"upload of part {number} of {self.key!r}",
            self._s3.client.upload_part,
            Bucket=self._s3.location.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"ETag": response["ETag"], "PartNumber": number})

    async def _wait_in_flight(self) -> None:
        if self._in_flight is not None:
            await self._in_flight
            self._in_flight = None

    async def _settle_in_flight(self) -> None:
        """Wait for the part in flight to end, whatever its outcome, without raising it."""
        task, self._in_flight = self._in_flight, None
        if task is None:
            return
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the failure that matters is being raised already

    async def _abort_after_failure(self) -> None:
        # The original error is what the caller needs; if the abort fails too, the upload
        # stays pending until the janitor or the bucket's lifecycle rule removes it.
        with contextlib.suppress(StorageError):
            await self.abort()


async def abort_multipart(s3: S3Calls, key: str, upload_id: str) -> None:
    """AbortMultipartUpload, treating an upload that is already gone as done."""
    try:
        await s3.call(
            f"abort of an upload of {key!r}",
            s3.client.abort_multipart_upload,
            Bucket=s3.location.bucket,
            Key=key,
            UploadId=upload_id,
        )
    except StorageError as exc:
        if exc.code not in MISSING_UPLOAD_CODES:
            raise
