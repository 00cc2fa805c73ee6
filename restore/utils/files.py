"""File-system helpers shared by every writer: nothing is ever left half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left exactly as it was. The temporary name
    keeps ``path``'s suffix (or ``suffix``) so that writers which dispatch on the extension (OpenCV) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix or path.suffix) + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    final_tmp = tmp_path.with_name(tmp_path.name[: -len(".tmp")])  # drop ".tmp" so the real suffix is last
    try:
        tmp_path.rename(final_tmp)
        yield final_tmp
        with open(final_tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(final_tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(final_tmp, path)
    finally:
        for leftover in (tmp_path, final_tmp):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically; returns ``Path(path)``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)
