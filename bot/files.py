"""Files the project writes: those holding personal data (exports, import rejects) readable by
their owner only, and the digest that tells a file is still the one written."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TextIO

PRIVATE = 0o600


def create_private(path: Path, *, encoding: str = "utf-8", newline: str = "") -> TextIO:
    """Open `path` to write text, created (or emptied) with mode 0600 whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    try:
        # A file that already existed keeps its mode through O_CREAT: narrow it too. Not a device
        # or a pipe (`--output /dev/stdout`): its mode is not this file's to change.
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.fchmod(descriptor, PRIVATE)
        return os.fdopen(descriptor, "w", encoding=encoding, newline=newline)
    except BaseException:
        os.close(descriptor)
        raise


def sha256_of(path: Path) -> str:
    """Return a file's SHA-256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
