"""The ``images`` table row of a stored image: written once per hash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.engines.base import Image
from app.store import migrations
from app.store.images import record_image


def test_an_image_row_is_written_once(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    migrations.apply(str(db))
    conn = sqlite3.connect(db)
    image = Image(b"\x89PNG...", "image/png", "ab" * 32)
    assert record_image(image, 30, 20)(conn) is True
    assert record_image(image, 30, 20)(conn) is False  # the same hash again: kept as it was
    rows = conn.execute("SELECT sha256, mime, width, height, bytes FROM images").fetchall()
    assert rows == [("ab" * 32, "image/png", 30, 20, len(image.data))]
    conn.close()
