"""A disk that fills up or turns read-only, for a real server's database.

Two ways, the first that works here:

- ``tmpfs``: a small tmpfs mounted for the test (needs root). ``fill()`` writes a filler file
  until the filesystem says ENOSPC, so SQLite sees a real full disk (SQLITE_FULL); ``free()``
  deletes it. ``read_only()`` remounts it read-only.
- ``rlimit``: no mount; ``fill()`` lowers the server process's RLIMIT_FSIZE (``prlimit``) to the
  size its files have now, so the next write that grows one fails as on a full disk (CPython
  ignores SIGXFSZ, so the write fails rather than the process dying); ``free()`` lifts it.
  SQLite then reports a failed write (SQLITE_IOERR) or a full disk, as the kernel's answer goes.
  ``read_only()`` takes the write bits off the folder and its files (no effect for root).

Shared by tests/reliability/test_disk_full.py and bench/reliability.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILLER = "filler.bin"


class Disk:
    kind = ""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid: int | None = None  # the server whose writes ``rlimit`` limits

    @property
    def db(self) -> Path:
        return self.folder / "arena.db"

    def fill(self) -> None:
        raise NotImplementedError

    def free(self) -> None:
        raise NotImplementedError

    def read_only(self) -> None:
        raise NotImplementedError


class TmpfsDisk(Disk):
    kind = "tmpfs"

    def fill(self) -> None:
        chunk = b"\0" * 65536
        with (self.folder / FILLER).open("ab", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(chunk[:size])
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def free(self) -> None:
        (self.folder / FILLER).unlink(missing_ok=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.folder)], check=True, capture_output=True)


class RlimitDisk(Disk):
    kind = "rlimit"

    def fill(self) -> None:
        assert self.pid is not None, "set disk.pid to the server's pid"
        wal = self.folder / (self.db.name + "-wal")  # SQLite appends to its WAL: it may not grow
        size = (wal if wal.exists() else self.db).stat().st_size
        _, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (size, hard))

    def free(self) -> None:
        assert self.pid is not None
        _, hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (hard, hard))

    def read_only(self) -> None:
        for path in [*self.folder.iterdir(), self.folder]:
            path.chmod(0o555 if path.is_dir() else 0o444)


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def small_disk(kind: str, megabytes: int = 8) -> Iterator[Disk]:
    """A folder on a disk that ``fill()`` fills (``kind``: tmpfs or rlimit)."""
    with tempfile.TemporaryDirectory(prefix="arena-disk-") as tmp:
        folder = Path(tmp) / "disk"
        folder.mkdir()
        if kind == "rlimit":
            yield RlimitDisk(folder)
            for path in [folder, *folder.iterdir()]:
                path.chmod(0o755)
            return
        if not _can_mount():
            raise PermissionError("mounting a tmpfs needs root")
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=True, capture_output=True
        )
        try:
            yield TmpfsDisk(folder)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def kinds() -> list[str]:
    """The ways this machine can make a small disk: tmpfs where it may mount, rlimit anywhere."""
    if _can_mount():
        try:
            with small_disk("tmpfs", 1):
                pass
        except (OSError, subprocess.CalledProcessError):
            return ["rlimit"]
        return ["tmpfs", "rlimit"]
    return ["rlimit"]
