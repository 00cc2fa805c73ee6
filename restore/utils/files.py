"""File-system helpers shared by every writer: nothing is ever left half-written.

A file being written lives first under a recognisable temporary name in the destination folder,
``.<name>.partial-<pid>-<random><suffix>``; ``is_partial_file`` tells such names apart (folder walkers skip them)
and ``remove_stale_partials`` deletes those whose writing process is gone (a run killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "is_partial_file", "probe_writable_folder", "remove_stale_partials"]

_PARTIAL = re.compile(r"^\..+\.partial-(\d+)-[A-Za-z0-9_]+(\.[^.]*)?(\.tmp)?$")


def is_partial_file(path: str | Path) -> bool:
    """Whether ``path`` is the temporary file of an unfinished atomic write (see the module docstring)."""
    return _PARTIAL.match(Path(path).name) is not None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot tell): leave its files alone
    return True


def remove_stale_partials(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete the temporary files in ``folder`` left by writers that no longer run; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob("**/.*" if recursive else ".*"):
        match = _PARTIAL.match(path.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def probe_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` (with its parents) and check that a file can be created in it and removed again.

    Raises:
        OSError: with a one-line message naming ``folder`` and the reason (a file is in the way, read-only
            file system, permission denied, ...).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        where = f" ({blocker} is a file)" if blocker is not None else ""
        raise NotADirectoryError(f"{folder}: cannot create the folder{where}") from None
    except OSError as err:
        raise OSError(f"{folder}: cannot create the folder ({err.strerror or err})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=f".probe.partial-{os.getpid()}-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OSError(f"{folder}: cannot write there ({err.strerror or err})") from None
    return folder


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it is renamed onto ``path`` atomically.

    On any exception the temporary file is removed and ``path`` is left exactly as it was. The temporary name
    keeps ``path``'s suffix (or ``suffix``) so that writers which dispatch on the extension (OpenCV) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.partial-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=(suffix or path.suffix) + ".tmp", dir=path.parent)
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
