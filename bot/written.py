"""Files the bot writes that hold numbers: an import's rejected lines, and exports written to a file.

Both get a retention (FILES_DAYS) and are reached by erasure. The rejects of an import go to
INSTANCE_DIR/rejects/, dated by the store's clock, where `purge` finds them. An export goes where
the operator says: its path is recorded (`accord:exports`) with its sha256, and only a file still
as written is deleted or changed; one edited or replaced since is the operator's, and is left.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from pathlib import Path

import phonenumbers

from bot import Accord
from bot.files import create_private, sha256_of
from bot.keys import EXPORTS_KEY

FILES_DAYS = 30  # an import's rejects and an export on disk, from when they were written
NOT_DIGIT = re.compile(r"\D")
DIGIT = re.compile(r"\d")
NAMED_DIGITS = 7  # digits in a file's name from which they may be a phone number's (a French one has 9)


def rejects_path(accord: Accord, contacts: Path) -> Path:
    """Return where the rejected lines of an import of `contacts` go: named after it, its digits masked
    if they could be a number's (an erasure takes the number's lines out, not a file's name)."""
    return accord.config.instance_dir / "rejects" / f"{shown_name(contacts)}.rejects.csv"


def dated(accord: Accord, path: Path) -> None:
    """Date a file written just now by the store's clock, which retention counts with."""
    now = accord.store.clock()
    os.utime(path, (now, now))


def shown_name(path: Path) -> str:
    """Name a file in records that outlive it (the ledger, the access log): its digits masked when they
    are enough to be a phone number's.

    An export of one voter's data is readily named after their number, and those records keep no
    number: nothing erases them.
    """
    name = path.name
    return DIGIT.sub("#", name) if len(DIGIT.findall(name)) >= NAMED_DIGITS else name


def record_export(accord: Accord, path: Path) -> None:
    """Remember an export written to `path`, so retention and erasure reach it."""
    if not path.is_file():  # /dev/stdout, a pipe: nothing stays on disk
        return
    accord.store.redis.hset(EXPORTS_KEY, str(path.resolve()),
                            json.dumps({"at": accord.store.clock(), "sha256": sha256_of(path)}))


def purge(accord: Accord, *, dry_run: bool = False) -> Counter[str]:
    """Delete the rejects and exports written FILES_DAYS ago or more; return how many, by kind."""
    removed: Counter[str] = Counter()
    before = accord.store.clock() - FILES_DAYS * 86400
    for path in _rejects(accord):
        if path.stat().st_mtime <= before:
            removed[f"import rejects files, {FILES_DAYS} days after the import"] += 1
            if not dry_run:
                path.unlink(missing_ok=True)
    for path, record in _exports(accord):
        if record["at"] <= before:
            removed[f"export files, {FILES_DAYS} days after the export"] += 1
            if not dry_run:
                _delete_export(accord, path)
    return removed


def erase(accord: Accord, phone: str) -> int:
    """Take a number out of the files written: its rejected lines, and the exports holding it (deleted).

    A line holds it when its digits do, in any format (+33 6 12 ..., 06.12..., 0033...). Return how
    many files changed.
    """
    national = str(phonenumbers.parse(phone).national_number)

    def holds(text: str) -> bool:
        return national in NOT_DIGIT.sub("", text)

    changed = 0
    for path in _rejects(accord):
        try:
            with path.open(encoding="utf-8", newline="") as file:
                rows = list(csv.reader(file))
        except (csv.Error, UnicodeDecodeError):  # not as the bot writes it: it goes whole if it holds the number
            if any(holds(line) for line in path.read_bytes().decode("utf-8", "replace").splitlines()):
                path.unlink()
                changed += 1
            continue
        kept = [row for row in rows if not any(holds(field) for field in row)]
        if len(kept) == len(rows):
            continue
        changed += 1
        if len(kept) <= 1:  # the header alone
            path.unlink()
            continue
        mtime = path.stat().st_mtime
        with create_private(path) as file:
            csv.writer(file).writerows(kept)
        os.utime(path, (mtime, mtime))  # erasure does not renew its retention
    for path, _ in _exports(accord):
        with path.open("rb") as file:
            if any(holds(line.decode("utf-8", "replace")) for line in file):
                changed += _delete_export(accord, path)
    return changed


def _rejects(accord: Accord) -> list[Path]:
    directory = accord.config.instance_dir / "rejects"
    return sorted(directory.glob("*.rejects.csv")) if directory.is_dir() else []


def _exports(accord: Accord) -> list[tuple[Path, dict]]:
    """Return the exports recorded whose file is still as written; forget the others."""
    found = []
    for raw, value in accord.store.redis.hgetall(EXPORTS_KEY).items():
        path, record = Path(raw.decode()), json.loads(value)
        if path.is_file() and sha256_of(path) == record["sha256"]:
            found.append((path, record))
        else:  # gone, or changed since: not the bot's file any more
            accord.store.redis.hdel(EXPORTS_KEY, raw)
    return found


def _delete_export(accord: Accord, path: Path) -> int:
    path.unlink(missing_ok=True)
    return accord.store.redis.hdel(EXPORTS_KEY, str(path))
