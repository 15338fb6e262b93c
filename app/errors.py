"""The domain's exception family. Each carries its meaning; `app.http.error_answers` maps
them to HTTP.

Messages are short, safe to show a client, and never contain a token, password or key.
"""

from __future__ import annotations


class SealdropError(Exception):
    """Base of every error the domain raises on purpose."""

    status = 500
    message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class BadRequest(SealdropError):
    """The request is malformed or an option is out of range."""

    status = 400
    message = "bad request"


class LinkNotFound(SealdropError):
    """No such link (never existed, or its tombstone is gone)."""

    status = 404
    message = "no such link"


class LinkGone(SealdropError):
    """The link expired, was deleted, used up, or failed to seal."""

    status = 410
    message = "this link has expired or was deleted"


class PasswordRequired(SealdropError):
    """The link is protected and no password, or a wrong one, was given."""

    status = 401
    message = "this link needs the right password"

    def __init__(self, realm: str, message: str | None = None) -> None:
        super().__init__(message)
        self.realm = realm


class TooManyAttempts(SealdropError):
    """Too many wrong passwords, or too many requests: try again later."""

    status = 429
    message = "too many attempts; try again later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class NotReady(SealdropError):
    """The file is still being sealed."""

    status = 503
    message = "the file is still being sealed; try again shortly"

    def __init__(self, retry_after: int = 2) -> None:
        super().__init__()
        self.retry_after = retry_after


class Unavailable(SealdropError):
    """A backing service (database, storage) is unavailable for now."""

    status = 503
    message = "service temporarily unavailable; try again shortly"

    def __init__(self, retry_after: int = 5, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UploadTooLarge(SealdropError):
    """The upload is larger than the configured maximum."""

    status = 413
    message = "the file is larger than this server accepts"


class StorageFull(SealdropError):
    """Storing the upload would take the stores past `SEALDROP_MAX_STORED_BYTES`."""

    status = 507
    message = "the server's storage is full; nothing was kept"


class RangeNotSatisfiable(SealdropError):
    """The requested byte range lies outside the file."""

    status = 416
    message = "requested range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size


class UploadTimedOut(SealdropError):
    """The client stopped sending the body; nothing was kept."""

    status = 408
    message = "the upload stalled and timed out; nothing was kept"


class Forbidden(SealdropError):
    """The manage token is missing or wrong."""

    status = 403
    message = "a valid manage token is needed"


class UploadKeyRequired(SealdropError):
    """Uploads need an upload key here, and none, an unknown or a revoked one was sent."""

    status = 401
    message = "uploads here need a valid upload key (Authorization: Bearer <key>)"


class UploaderRefused(SealdropError):
    """The uploader is known but may not upload: revoked, or no trusted identity."""

    status = 403
    message = "you may not upload here"


class Conflict(SealdropError):
    """The change contradicts what already happened (a limit below the downloads made)."""

    status = 409
    message = "this change conflicts with the link's current state"


class UploadAborted(SealdropError):
    """The client went away or sent a broken body; nothing was kept."""

    status = 400
    message = "the upload was interrupted; nothing was kept"


class BlobCorrupted(SealdropError):
    """A stored blob failed authentication: it is never served."""

    status = 500
    message = "the stored file failed its integrity check"


class UploadNotFound(SealdropError):
    """No resumable or direct upload has this id (never created, completed, cancelled or
    removed), or this server has no direct uploads."""

    status = 404
    message = "no such upload"


class UploadGone(SealdropError):
    """The resumable upload was terminated or expired; its bytes are gone."""

    status = 410
    message = "this upload was terminated or has expired; start a new one"


class OffsetMismatch(Conflict):
    """A PATCH's Upload-Offset is not the offset the server acknowledged."""

    message = "Upload-Offset does not match the upload's offset; ask with HEAD"


class ChecksumMismatch(SealdropError):
    """The body does not match its Upload-Checksum; nothing of it was kept (tus: 460)."""

    status = 460
    message = "the body does not match its Upload-Checksum; nothing of it was kept"


class TusVersionUnsupported(SealdropError):
    """The request's Tus-Resumable names a version this server does not speak."""

    status = 412
    message = "this server speaks tus 1.0.0 (Tus-Resumable: 1.0.0)"


class UnsupportedMediaType(SealdropError):
    """A PATCH body that is not `application/offset+octet-stream`."""

    status = 415
    message = "a PATCH body must be Content-Type: application/offset+octet-stream"
