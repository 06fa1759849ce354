"""Where the running bot answers: written under instance/ when its server starts, read by local commands.

`make run` may serve any PORT, and another terminal does not share its environment: `reply` reads
the address the server wrote instead of guessing port 8000. The file names the server's process
too; once that process is gone the address is stale and ignored, whether or not it was removed.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)
FILE = "address"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # a bind on every address answers on loopback


def url_of(sock: socket.socket) -> str | None:
    """Return the URL a client on this machine reaches a listening TCP socket at; None for a unix socket."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    host, port = sock.getsockname()[:2]
    host = WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(instance_dir: Path, sockets: Iterable[socket.socket], pid: int) -> str | None:
    """Write the first TCP socket's URL and the serving process's id under `instance_dir`; return the URL.

    None, and nothing written, for a server on a unix socket only, or where the folder cannot be
    written (a read-only host): the address helps local commands, and must never stop a server.
    """
    url = next((found for sock in sockets if (found := url_of(sock))), None)
    if url is None:
        return None
    partial = instance_dir / f".{FILE}.{pid}"
    try:
        instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial.write_text(f"{url} {pid}\n", encoding="utf-8")
        partial.replace(instance_dir / FILE)  # whole or absent: a reader never sees half an address
    except OSError as error:
        log.warning("could not write the bot's address under %s: %s", instance_dir, error)
        return None
    return url


def forget(instance_dir: Path, pid: int) -> None:
    """Remove the address if process `pid` wrote it (a later server's address stays)."""
    path = instance_dir / FILE
    if _read(path)[1] == pid:
        path.unlink(missing_ok=True)


def running(instance_dir: Path) -> str | None:
    """Return the URL the running bot wrote, or None: no file, a damaged one, or its server gone."""
    url, pid = _read(instance_dir / FILE)
    return url if url and pid and _alive(pid) else None


def _read(path: Path) -> tuple[str, int]:
    try:
        url, pid = path.read_text(encoding="utf-8").split()
        return url, int(pid)
    except (OSError, ValueError):  # absent, unreadable or not "URL PID": no address known
        return "", 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's: pids are reused, but a stale file here is rarer still
        return True
    return True
