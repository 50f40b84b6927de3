"""Files that must survive a crash or a power loss: keys, wallets, records.

:func:`write_atomic` is the one way our code writes such a file. The bytes go to a
temporary file in the target's own directory (created with ``mode``, never readable
by others on the way), the file is fsynced, renamed over the target (atomic on
POSIX), and the directory is fsynced so the rename itself is durable. A reader sees
the old file or the new one, never a mix; a crash at any point leaves the old file
and no temporary file behind (unless the process dies between the two, when a
``.<name>.*.tmp`` file may remain next to an intact target).

With ``exclusive=True`` the target is never replaced: the temporary file is
hard-linked to the target name, which fails if it exists (``FileExistsError``), even
against a concurrent writer.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

PRIVATE_FILE_MODE: Final = 0o600  # keys, wallets, records: the owner only
PUBLIC_FILE_MODE: Final = 0o644  # certificates, configs, genesis


def fsync_directory(directory: Path) -> None:
    """Make the entries of ``directory`` (a rename or a new file in it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, mode: int = PRIVATE_FILE_MODE,
                 exclusive: bool = False) -> None:
    """Replace (or, with ``exclusive``, create) ``path`` with ``data`` (str as UTF-8), durably.

    Precondition: ``path.parent`` exists. Raises ``OSError`` (``FileExistsError`` when
    ``exclusive`` and ``path`` exists); the target is then as it was before the call.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
        fsync_directory(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["PRIVATE_FILE_MODE", "PUBLIC_FILE_MODE", "fsync_directory", "write_atomic"]
