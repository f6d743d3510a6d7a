"""The upload size limit, enforced while the request body is read (FILE_UPLOAD_HANDLERS).

Django parses a multipart body before any view runs, and its default handlers would spool a
file of any size to a temporary file first; the services' own check (``ingestion.files.
upload_store``) would only then refuse it. ``UploadLimitHandler`` comes first in the chain: it
counts each file's bytes as they arrive and, at the first chunk that takes a file past
``FILES_MAX_SIZE_MB``, stops reading the request (``StopUpload(connection_reset=True)``:
Django discards what it had of that file and reads no further), then fails the parse with
``UploadTooLargeError`` — a 413 ``{"detail": "<file>: larger than the N MB upload limit"}``
in every DRF view, before the view runs, so nothing is stored.

Under WSGI the rest of the body is never read. Under ASGI, Django's handler has already
received the whole body (spooled to a temporary file) before parsing starts; there the
reverse proxy's body limit is the guard against the transfer itself, and this handler still
keeps the file from being processed or stored.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from rest_framework import status
from rest_framework.exceptions import APIException


class UploadTooLargeError(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "upload too large"
    default_code = "upload_too_large"


def upload_limit_bytes() -> int:
    return int(settings.FILES_MAX_SIZE_MB) * 1024 * 1024


class UploadLimitHandler(FileUploadHandler):
    """Refuses a request as soon as one of its files passes FILES_MAX_SIZE_MB (see the module)."""

    def __init__(self, request: Any = None) -> None:
        super().__init__(request)
        self.limit = upload_limit_bytes()
        self.refused: str | None = None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.refused = f"{self.file_name}: larger than the {self.limit // (1024 * 1024)} MB upload limit"
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) builds the file

    def upload_complete(self) -> None:
        if self.refused is not None:
            raise UploadTooLargeError(self.refused)
