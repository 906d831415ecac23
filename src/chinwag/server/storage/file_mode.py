"""The SQLite database file is the server's secrets at rest: owner-only (0600).

It holds HS256 secrets, development private keys, the nonce-sealing secret and every
message. SQLite creates a new file with the process umask (often 0644: world-readable) and
gives ``-wal`` and ``-shm`` the main file's mode, so the one place to get it right is
before SQLite first opens the file: create it 0600 ourselves. A file made by an earlier
version, or copied in, is tightened at start, with a warning naming the path (never its
contents) so the operator can check how it came to be readable.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["OWNER_ONLY", "secure_database_file"]

log = logging.getLogger("chinwag.storage")

OWNER_ONLY = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")


def secure_database_file(path: str) -> None:
    """Create ``path`` 0600 if missing; take group/other access off it and its side files."""
    main = Path(path)
    if not main.parent.is_dir():
        return  # SQLite reports the missing directory in its own words
    fd = os.open(main, os.O_CREAT | os.O_RDWR, OWNER_ONLY)
    os.close(fd)
    for file in (main, *(Path(f"{path}{suffix}") for suffix in _SIDE_FILES)):
        _tighten(file)


def _tighten(file: Path) -> None:
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(file, mode & 0o700)
        log.warning(
            "database file %s was readable by other users (mode %o); set to %o",
            file,
            mode,
            mode & 0o700,
        )
