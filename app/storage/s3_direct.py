"""Multipart uploads written by clients straight to S3 (direct uploads).

The API starts the multipart upload, hands out presigned `UploadPart` URLs, lists what
arrived, completes or aborts it; the bytes themselves never pass through an API process.
Presigning is local (a signature over the request, no call to S3), but it may first
fetch credentials (IRSA, instance profile), so it too runs off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.storage.base import StorageError, check_key
from app.storage.s3_client import MISSING_UPLOAD_CODES, S3Calls
from app.storage.s3_writer import abort_multipart

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """One part S3 holds for an unfinished multipart upload."""

    number: int
    size: int
    etag: str
    modified: datetime  # aware, UTC, by the store's clock


class UploadMissing(StorageError):
    """The multipart upload is gone (completed, aborted, or removed by a lifecycle rule)."""


class S3Direct:
    """Direct multipart uploads into one bucket."""

    def __init__(self, s3: S3Calls, signer: S3Calls | None = None) -> None:
        self._s3 = s3
        # Presigned URLs name the endpoint their client was made for: clients outside the
        # cluster may need another name for the same S3 than the API uses.
        self._signer = signer or s3
        self.bucket = s3.location.bucket

    @property
    def browser_origins(self) -> list[str]:
        """The origins of the presigned URLs, which a page must be allowed to connect to."""
        location = self._signer.location
        if location.endpoint_url:
            parts = urlsplit(location.endpoint_url)
            return [f"{parts.scheme}://{parts.netloc}"]
        # AWS, path-style: the regional endpoint (us-east-1 also signs the global one).
        origins = [f"https://s3.{location.region}.amazonaws.com"]
        if location.region == "us-east-1":
            origins.append("https://s3.amazonaws.com")
        return origins

    async def start(self, key: str) -> str:
        """CreateMultipartUpload for `key`; returns its upload id."""
        response = await self._s3.call(
            f"start of a direct upload of {check_key(key)!r}",
            self._s3.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
        )
        return response["UploadId"]

    async def presign_parts(
        self, key: str, upload_id: str, numbers: list[int], expires_in: int
    ) -> dict[int, str]:
        """A presigned UploadPart URL for each part number, valid `expires_in` seconds."""

        def sign() -> dict[int, str]:
            return {
                number: self._signer.client.generate_presigned_url(
                    "upload_part",
                    Params={
                        "Bucket": self.bucket,
                        "Key": key,
                        "UploadId": upload_id,
                        "PartNumber": number,
                    },
                    ExpiresIn=expires_in,
                )
                for number in numbers
            }

        return await self._s3.run(f"signing of parts of {check_key(key)!r}", sign)

    async def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """ListParts, every page; UploadMissing if the upload is gone."""
        parts: list[UploadedPart] = []
        marker = 0
        while True:
            try:
                page = await self._s3.call(
                    f"listing of parts of {check_key(key)!r}",
                    self._s3.client.list_parts,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumberMarker=marker,
                )
            except StorageError as exc:
                if exc.code in MISSING_UPLOAD_CODES:
                    raise UploadMissing(str(exc), code=exc.code) from None
                raise
            for part in page.get("Parts", []):
                parts.append(
                    UploadedPart(
                        number=part["PartNumber"],
                        size=part["Size"],
                        etag=part["ETag"],
                        modified=part["LastModified"].astimezone(UTC),
                    )
                )
            if not page.get("IsTruncated"):
                return parts
            marker = int(page.get("NextPartNumberMarker", 0))

    async def complete(self, key: str, upload_id: str, parts: list[UploadedPart]) -> None:
        """CompleteMultipartUpload with exactly `parts` (as listed), in order."""
        listed: list[CompletedPartTypeDef] = [
            {"PartNumber": part.number, "ETag": part.etag}
            for part in sorted(parts, key=lambda p: p.number)
        ]
        await self._s3.call(
            f"completion of a direct upload of {check_key(key)!r}",
            self._s3.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )

    async def abort(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is not an error."""
        await abort_multipart(self._s3, check_key(key), upload_id)
