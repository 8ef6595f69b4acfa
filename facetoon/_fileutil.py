"""Atomic file writes: a temporary file in the target's folder, then ``os.replace`` (or, not to
replace an existing file, :func:`link_no_clobber`)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

from .errors import OutputError

__all__ = ["atomic_write_bytes", "atomic_open", "create_temp", "link_no_clobber", "same_file",
           "not_a_folder", "not_a_folder_reason", "make_folder"]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file: by inode when both exist (hard links, symlinks,
    other spellings), else by resolved path; ``False`` when that cannot be decided."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def not_a_folder(folder: Path) -> Path | None:
    """What stops ``folder`` from being a folder: ``folder`` itself or the nearest of its parents
    that exists, when that one is not a folder (a file); ``None`` when ``folder`` is a folder or can
    be created (nothing is created here)."""
    for p in (folder, *folder.parents):
        if p.is_dir():
            return None
        if p.exists() or p.is_symlink():  # a file, or a broken symbolic link
            return p
    return None


def not_a_folder_reason(blocker: Path) -> str:
    """``"<blocker> is a file, not a folder"`` (or ``"... is not a folder"`` for a broken link)."""
    return f"{blocker} is a file, not a folder" if blocker.is_file() else f"{blocker} is not a folder"


def make_folder(folder: Path, target: Path | None = None) -> None:
    """``folder.mkdir(parents=True, exist_ok=True)``, with a message that names the real problem
    when a file stands where a folder is needed (``mkdir`` only says "File exists" or "Not a
    directory").

    Raises:
        OutputError: ``folder`` or one of its parents is a file (named ``target`` or ``folder``).
        OSError: the folder could not be made otherwise.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        blocker = not_a_folder(folder)
        if blocker is None:
            raise
        raise OutputError(f"cannot write: {not_a_folder_reason(blocker)}",
                          path=folder if target is None else target) from None


def create_temp(directory: Path, name: str, suffix: str = ".tmp") -> tuple[Path, int]:
    """A new hidden file ``.<name>.<random><suffix>`` in ``directory``, opened for writing: its path and
    descriptor. Mode 0666 minus the umask, as a plain ``open`` gives (without touching the umask)."""
    for _ in range(100):
        tmp = directory / f".{name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return tmp, fd
    raise OutputError("cannot create a temporary file", path=directory)


def link_no_clobber(tmp: Path, target: Path) -> None:
    """Move the finished file ``tmp`` to ``target`` only if ``target`` does not exist.

    Atomic where the file system has hard links: ``os.link`` fails if ``target`` exists, so a
    file another program creates at the last moment is never replaced (a check followed by
    ``os.replace`` would replace it). Without hard links (some network or FAT file systems) it
    falls back to that check, then ``os.replace``. ``tmp`` and ``target`` must be on the same file
    system (``tmp`` beside ``target``, as :func:`create_temp` makes it).

    Raises:
        OutputError: ``target`` exists; ``tmp`` is left in place (the caller keeps or deletes it).
        OSError: the move failed otherwise.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputError("output file already exists (overwrite is off)", path=target) from None
    except OSError:  # no hard links on this file system: check, then replace
        if target.exists():
            raise OutputError("output file already exists (overwrite is off)", path=target) \
                from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[IO[bytes]]:
    """Open a temporary binary file beside ``path``; it replaces ``path`` only if the block succeeds.

    ``suffix`` lets libraries that pick a format from the extension see the right one.
    """
    target = Path(path)
    make_folder(target.parent, target)
    tmp, fd = create_temp(target.parent, target.name, suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)
