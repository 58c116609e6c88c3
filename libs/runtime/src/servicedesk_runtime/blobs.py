"""A content-addressed blob store in a directory: raw mails and attachments.

Events name a blob by its SHA-256 and never carry its bytes. The directory is shared like
object storage (intake writes, the gateway reads); a blob is written to a temporary file,
flushed to disk and renamed into place, so a reader never sees half a blob and a crash
leaves at most an orphan temporary file. Writing the same content twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    pass


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class BlobStore:
    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def put(self, content: bytes) -> str:
        """Stores `content` durably; returns its SHA-256 (hex)."""
        digest = sha256_of(content)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _sync_folder(path.parent)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError as missing:
            raise BlobNotFound(digest) from missing

    def contains(self, digest: str) -> bool:
        return self._path(digest).exists()

    def _path(self, digest: str) -> Path:
        if not _SHA256.fullmatch(digest):
            raise BlobNotFound(digest)  # never a path outside the store
        return self.folder / digest[:2] / digest[2:4] / digest


def _sync_folder(folder: Path) -> None:
    """The rename itself is durable only once the folder is flushed (POSIX)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
