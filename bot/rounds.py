"""Start a consent round: read the file, normalize, filter, and queue batches for the workers."""

from __future__ import annotations

import csv
import datetime as dt
import json
import multiprocessing
import re
import secrets
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot import Accord, written
from bot.contacts import ContactsError, Row, read_header, read_rows
from bot.files import create_private
from bot.flows import Flow
from bot.phones import FRENCH_MOBILE_PREFIXES, MobileBits, PhoneError, normalize
from bot.sending import BATCH, enqueue_many, enqueue_stored, rate_of
from bot.store import new_batch_id
from bot.windows import read_postcode, region_of

# Where a list may come from (COMPLIANCE.md C.13): HR, patient and public-registry files never.
SOURCE_TYPES = {"broker": "rented or bought from a data broker", "supporters": "the campaign's own supporters",
                "members": "party or association members", "petition": "signatories who gave their number",
                "event": "attendees of a campaign event"}
REFUSED_SOURCES = {"hr": "a company's HR file", "patient": "a patient file",
                   "public-registry": "a public registry (electoral roll, directories ...)"}
NOT_FRENCH = "not a French mobile (+33 6/7): its time zone may differ from the flow's"
# Counted apart from the lines' fates: the number is imported, its holidays are the national ones.
POSTCODE_NOT_READ = "postcode not read"
NUMBER_LIKE = re.compile(r"[+-][0-9 .()/-]*")  # what a rejected value starting with + or - may hold unquoted
SHOWN_REJECTS = 20


class OriginError(ValueError):
    """An import whose origin is missing or refused; the message names the option and the rule."""


@dataclass(frozen=True)
class Origin:
    """Where a contacts file came from, recorded with every round (C.13, A.6)."""

    source_type: str
    broker: str
    contract: str
    operator: str
    file: str
    imported_at: str
    # Names this import in the ledger, in its batches' ids and in each number's "ask:ID" entry, so
    # every number is credited to the import that queued it, whatever came after.
    id: str = field(default_factory=lambda: secrets.token_hex(4))

    def check(self) -> None:
        """Refuse a source type the law rules out, or a broker list without its contract."""
        if self.source_type in REFUSED_SOURCES:
            raise OriginError(f"--source-type {self.source_type}: {REFUSED_SOURCES[self.source_type]} may not be "
                              "used for political messages (COMPLIANCE.md C.13)")
        if self.source_type not in SOURCE_TYPES:
            raise OriginError(f"--source-type {self.source_type!r}: use one of {', '.join(SOURCE_TYPES)}")
        if self.source_type == "broker" and not self.contract.strip():
            raise OriginError("--contract: a rented list needs the broker contract's reference (C.13)")
        if not self.operator.strip():
            raise OriginError("--operator: say who starts this round")


@dataclass
class ImportReport:
    """What became of every line: imported = queued + rejected + duplicate + suppressed + already + waiting."""

    counts: Counter[str] = field(default_factory=Counter)
    rejects_by_reason: Counter[str] = field(default_factory=Counter)
    shown_rejects: list[tuple[int, str, str]] = field(default_factory=list)
    rejects_file: Path | None = None
    batches: int = 0
    recovered: int = 0  # batches an earlier import admitted but never queued, queued now


def start_round(accord: Accord, flow: Flow, path: Path, origin: Origin, *, dry_run: bool = False,
                rate: float | None = None, progress: Callable[[int], None] = lambda rows: None) -> ImportReport:
    """Import a contacts file into a round of `flow` and queue its new numbers for the workers."""
    origin.check()
    header = read_header(path)  # refuses sensitive or unknown columns before anything is stored
    report = ImportReport()
    rejects = _Rejects(written.rejects_path(accord, path), report, accord)
    try:
        if not dry_run:
            settings = {"rate": str(rate)} if rate else {}
            accord.store.set_round(flow, **settings, origin=json.dumps(asdict(origin)))
            accord.store.record_import(flow, json.dumps(asdict(origin), ensure_ascii=False))
            report.recovered = queue_admitted(accord, flow)  # what an import cut short left admitted
        admit = _Admission(accord, flow, report, dry_run, rate, origin.id)
        imported = 0
        try:
            for row in read_rows(path, header):
                imported += 1
                if imported % 10_000 == 0:
                    progress(10_000)
                if not isinstance(row, Row):
                    rejects.add(row[0], "", row[1])
                    continue
                try:
                    phone = normalize(row.phone)
                except PhoneError as error:
                    rejects.add(row.line, row.phone, str(error))
                    continue
                if len(phone) != 12 or not phone.startswith(FRENCH_MOBILE_PREFIXES):  # E.164 from normalize
                    rejects.add(row.line, row.phone, NOT_FRENCH)
                    continue
                if not row.postcode:
                    admit.add(phone)  # deduped where admitted
                elif postcode := read_postcode(row.postcode):
                    # The calendar region is all the worker needs of it: one letter, none in the metropole
                    # (13 bytes a number waiting in its batch, not 19).
                    region = region_of(postcode)
                    admit.add(f"{phone}/{region}" if region else phone)
                else:  # not one: the number follows the national holidays, like one with no postcode
                    report.counts[POSTCODE_NOT_READ] += 1
                    admit.add(phone)
            admit.flush()
        finally:
            admit.close()
    finally:
        rejects.close()
    report.counts.update(imported=imported, duplicate=0)  # duplicates are counted as admission meets them
    if not dry_run:
        accord.store.count(flow, {f"import:{name}": report.counts[name] for name in ("imported", "duplicate")}
                           | {f"import:rejected:{reason}": n for reason, n in report.rejects_by_reason.items()})
    return report


CODES = {"q": "queued", "a": "already asked", "s": "suppressed", "w": "waiting for another flow's answer"}


class _Admission:
    """Admit numbers a batch at a time, and queue each batch's admitted numbers as one job.

    A short list is admitted here, batch after batch. A long one moves to a forked process
    after its first batches: the HMAC per number, the admit script's round trip and the jobs'
    encoding then run beside the reading instead of taking turns with it (a thread would, on
    Python's one lock). At most a few tasks are in flight, so memory stays flat, and an error
    there stops the import at the next task.

    Numbers met earlier in the file are dropped where batches are admitted, before the admit
    script: here for the first batches, then in the admission process, which inherits what was
    seen here when it forks. The reading, the longer of the two, is spared the dedupe bitmap's
    work (a cache miss a number, in 25 MB).
    """

    PARALLEL_AFTER = 10  # batches admitted here before the admission process starts (5,000 numbers)
    WORKERS = 1  # a second one measured slower on two cores: it competes with the reading and Redis
    PER_TASK = 4  # batches handed over at once: the cost per task is paid a quarter as often
    IN_FLIGHT = 4  # tasks

    def __init__(self, accord: Accord, flow: Flow, report: ImportReport, dry_run: bool, rate: float | None,
                 origin: str) -> None:
        self.accord, self.flow, self.report, self.dry_run, self.origin = accord, flow, report, dry_run, origin
        self.rate = rate or rate_of(accord, flow)
        self.siblings = accord.flows_for(flow.sender)
        # Without fork (Windows), every batch is admitted here.
        self.parallel_after = self.PARALLEL_AFTER if "fork" in multiprocessing.get_all_start_methods() else -1
        self.items: list[str] = []  # 'phone' or 'phone/region'
        self.seen: MobileBits | None = MobileBits()  # the numbers met so far, where batches are admitted
        self.batches: list[str] = []  # for the pool's next task
        self.admitted = 0  # batches admitted in this process
        self.pool: ProcessPoolExecutor | None = None
        self.pending: deque[Future[Counter[str]]] = deque()

    def add(self, item: str) -> None:
        """Take a number for the next batch: 'phone', or 'phone/region' (bot/windows.py's REGIONS)."""
        self.items.append(item)
        if len(self.items) == BATCH:
            self._batch()

    def flush(self) -> None:
        if self.items:
            self._batch()
        if self.batches:
            self._submit()
        while self.pending:
            self._count(self.pending.popleft().result())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None  # it holds this admission (its initializer's argument): no cycle left
        self.seen = None

    def _batch(self) -> None:
        batch, self.items = ",".join(self.items), []
        if self.pool is None and 0 <= self.parallel_after <= self.admitted:
            # Forked, so the admission process shares this one's store, flows, clock and settings.
            self.pool = ProcessPoolExecutor(self.WORKERS, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_serve, initargs=(self,))
        if self.pool is None:
            self.admitted += 1
            self._count(self.admit([batch]))
            return
        self.batches.append(batch)
        if len(self.batches) == self.PER_TASK:
            self._submit()

    def _submit(self) -> None:
        assert self.pool is not None
        self.pending.append(self.pool.submit(_admit_served, self.batches))
        self.batches = []
        # The first submit forked the admission process, with a copy of what was seen here: it
        # dedupes from now on, and this copy would only hold 25 MB more.
        self.seen = None
        if len(self.pending) > self.IN_FLIGHT:
            self._count(self.pending.popleft().result())  # waits, and raises what went wrong there

    def _count(self, counts: Counter[str]) -> None:
        self.report.batches += counts.pop("job", 0)
        self.report.counts.update(counts)

    def admit(self, batches: list[str]) -> Counter[str]:
        """Admit batches, and queue each one's admitted numbers; return how many went each way."""
        counts: Counter[str] = Counter()
        admitted = []
        for batch in batches:
            given = batch.split(",")
            items = self._first_met(given, counts)
            if not items:
                continue
            if len(items) < len(given):
                batch = ",".join(items)
            batch_id = new_batch_id(self.origin)  # the admit script stores the numbers it queues under it
            codes = self.accord.store.admit(self.flow, items, self.siblings, dry_run=self.dry_run, batch_id=batch_id)
            counts.update({name: codes.count(code) for code, name in CODES.items()})
            if "q" in codes and not self.dry_run:
                admitted.append(batch_id)
        if admitted:
            enqueue_stored(self.accord, "requests", self.flow, admitted, rate=self.rate)
            self.accord.store.settle(self.flow, admitted)
            counts["job"] = len(admitted)
        return counts

    def _first_met(self, items: list[str], counts: Counter[str]) -> list[str]:
        """Return the items whose number the file has not given before; count the others as duplicates."""
        assert self.seen is not None, "admission runs where the numbers met so far are kept"
        first = [item for item in items if self.seen.add(item)]
        if len(first) < len(items):
            counts["duplicate"] += len(items) - len(first)
        return first


def _queued(admitted: str) -> list[str]:
    """Return the numbers an admitted batch of an earlier version ("letters|batch") queued."""
    codes, _, batch = admitted.partition("|")
    return [item for item, code in zip(batch.split(","), codes, strict=True) if code == "q"]


def queue_admitted(accord: Accord, flow: Flow) -> int:
    """Queue the batches an import admitted but stopped before queueing (Redis gone, a crash); return how many.

    A batch queued twice, should an import still running queue it too, asks no one twice: each
    number is claimed before its request goes.
    """
    admitted = accord.store.unsettled(flow)
    if not admitted:
        return 0
    stored = [entry for entry in admitted if "|" not in entry]
    enqueue_stored(accord, "requests", flow, stored)
    # An earlier version kept the numbers themselves on the list ("letters|batch"): stored now.
    enqueue_many(accord, "requests", flow, [_queued(entry) for entry in admitted if "|" in entry])
    accord.store.settle(flow, admitted)
    return len(admitted)


_served: _Admission | None = None  # in a forked admission process: the admission it works for


def _serve(admission: _Admission) -> None:
    global _served
    _served = admission


def _admit_served(batches: list[str]) -> Counter[str]:
    if _served is None:
        raise RuntimeError("admission runs in a process started by _Admission")
    return _served.admit(batches)


class _Rejects:
    """Write rejected lines to the instance directory as they come (a million-line file keeps memory flat).

    They hold numbers and names: readable by the owner only, and kept FILES_DAYS (bot/written.py).
    """

    def __init__(self, path: Path, report: ImportReport, accord: Accord) -> None:
        """Open the file before anything is stored: a place it cannot be written refuses the import
        whole, not half-way; and an earlier import's rejects, replaced, cannot pass for this one's."""
        self.path, self.report, self.accord = path, report, accord
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.file = create_private(path)
        except OSError as error:
            raise ContactsError(f"{path}: cannot write the rejected lines ({error.strerror})") from error
        self.writer = csv.writer(self.file)

    def add(self, line: int, value: str, reason: str) -> None:
        try:
            if self.report.rejects_file is None:
                self.writer.writerow(["line", "value", "reason"])
                self.report.rejects_file = self.path
            self.writer.writerow([line, _inert(value), reason])
        except OSError as error:  # a full disk
            raise ContactsError(f"{self.path}: cannot write the rejected lines ({error.strerror})") from error
        self.report.counts["rejected"] += 1
        self.report.rejects_by_reason[_kind(reason)] += 1
        if len(self.report.shown_rejects) < SHOWN_REJECTS:
            self.report.shown_rejects.append((line, value, reason))

    def close(self) -> None:
        """Close the file; remove it when no line was rejected."""
        try:
            self.file.close()
            if self.report.rejects_file is None:
                self.path.unlink()
            else:
                written.dated(self.accord, self.path)
        except OSError as error:
            raise ContactsError(f"{self.path}: cannot write the rejected lines ({error.strerror})") from error


def _inert(value: str) -> str:
    """Keep a spreadsheet from running a value as a formula (=HYPERLINK(...), @SUM(...)): quote it.
    A number written +44 ... or -... is left as it is."""
    if value.startswith(("=", "@", "\t", "\r")) or (value.startswith(("+", "-")) and not NUMBER_LIKE.fullmatch(value)):
        return "'" + value
    return value


def _kind(reason: str) -> str:
    """Group reasons for counting: 'unreadable CSV on lines 2-4 (...)' -> 'unreadable CSV'."""
    kind = re.sub(r" on lines? [\d-]+", "", reason.split(" (")[0])
    return re.sub(r"\d+", "N", kind)


def now_iso(accord: Accord) -> str:
    """Return the store's clock as an ISO timestamp, for origins."""
    return dt.datetime.fromtimestamp(accord.store.clock(), dt.UTC).isoformat(timespec="seconds")


__all__ = ["ContactsError", "ImportReport", "Origin", "OriginError", "start_round"]
