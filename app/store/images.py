"""The ``images`` table: one row of metadata per stored image file (the bytes live on disk by hash,
see :mod:`app.media.images`)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Protocol


class StoredImage(Protocol):
    """What the row needs of ``app.engines.base.Image`` (the store does not import the engines)."""

    @property
    def data(self) -> bytes: ...
    @property
    def mime(self) -> str: ...
    @property
    def sha256(self) -> str: ...


def record_image(image: StoredImage, width: int, height: int) -> Callable[[sqlite3.Connection], bool]:
    """A store write: the image's row, once (a second write of the same hash is a no-op).

    Returns True when the row is new. Save the file (``ImageStore.save``) before this write, so a
    row never names a missing file."""
    row = (image.sha256, image.mime, width, height, len(image.data), time.time())

    def write(conn: sqlite3.Connection) -> bool:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO images (sha256, mime, width, height, bytes, created) VALUES (?, ?, ?, ?, ?, ?)", row
        )
        return cursor.rowcount == 1

    return write
