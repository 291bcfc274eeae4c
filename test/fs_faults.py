"""Real file-system faults for the recorder tests: a disk that fills up and one that turns read-only.

Both are real mounts, not mocks. A full disk is a small tmpfs (`mount -t tmpfs -o size=...`): writes
fail with ENOSPC exactly as on a full log partition. A read-only disk is an ext4 image on a loop
device mounted `errors=remount-ro` and sent into its error state through sysfs
(`/sys/fs/ext4/<dev>/trigger_fs_error`): what the kernel does to an SD card or SSD partition after
I/O errors, and from then on every write fails with EROFS, through files already open too. A chmod
would not stop root, and a read-only remount is refused while a file is open for writing, so
neither would hit a recorder mid-recording. RLIMIT_FSIZE was not used: it raises SIGXFSZ/EFBIG,
which is not what a full disk does. Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests skip
and say so.
"""
from __future__ import annotations

import errno
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


def _mount_or_skip(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CAP_SYS_ADMIN); run the suite as root or in CI")
    done = _run("mount", *args)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip() or done.returncode}); needs root with CAP_SYS_ADMIN")


def _unmount(point: Path) -> None:
    if _run("umount", str(point)).returncode != 0:
        _run("umount", "-l", str(point))  # a killed process's files may still be closing


@contextmanager
def small_tmpfs(point: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` KiB mounted at `point` (created): a disk that fills up."""
    point.mkdir(parents=True, exist_ok=True)
    _mount_or_skip("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point))
    try:
        yield point
    finally:
        _unmount(point)


def fill_up(folder: Path) -> None:
    """Take every free block, as another process writing logs would; the disk is then full."""
    block = bytes(1 << 16)
    with (folder / "filler").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


class FailingExt4:
    """An ext4 file system on a loop device; `fail()` turns it read-only as a failing disk does."""

    def __init__(self, point: Path, image: Path) -> None:
        self.point, self.image = point, image
        self.device = ""

    def mount(self, size_mb: int) -> None:
        with self.image.open("wb") as f:
            f.truncate(size_mb << 20)
        made = _run("mkfs.ext4", "-q", "-F", str(self.image))
        if made.returncode != 0:
            pytest.skip(f"mkfs.ext4 failed ({made.stderr.strip()}); e2fsprogs is needed for the read-only test")
        self.point.mkdir(parents=True, exist_ok=True)
        _mount_or_skip("-o", "loop,errors=remount-ro", str(self.image), str(self.point))
        self.device = _run("findmnt", "-n", "-o", "SOURCE", str(self.point)).stdout.strip()

    def fail(self) -> None:
        """The kernel's own error path: the file system is remounted read-only (`emergency_ro`)."""
        trigger = Path("/sys/fs/ext4") / Path(self.device).name / "trigger_fs_error"
        trigger.write_text("1\n")
        options = _run("findmnt", "-n", "-o", "OPTIONS", str(self.point)).stdout
        assert "emergency_ro" in options or options.startswith("ro"), options

    def unmount(self) -> None:
        _unmount(self.point)  # `mount -o loop` detaches the loop device on unmount
        self.image.unlink(missing_ok=True)


@contextmanager
def failing_ext4(point: Path, image: Path, size_mb: int = 8) -> Iterator[FailingExt4]:
    fs = FailingExt4(point, image)
    fs.mount(size_mb)
    try:
        yield fs
    finally:
        fs.unmount()
