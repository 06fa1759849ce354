"""Showing the rules hold: flow lint, consent proof, rights, retention, reconcile, costs."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
from redis.exceptions import RedisError

from bot import (
    Accord,
    archive,
    audit,
    bundle,
    checkpoints,
    compaction,
    ledger,
    lint,
    personal_archive,
    proof,
    rights,
    rights_requests,
    written,
)
from bot.cli import Services, main, phone_argument
from bot.config import Config, ConfigError
from bot.costs import costs, parse_price, tariff_of, write_csv
from bot.files import create_private
from bot.flows import FlowError, flow_paths, load_flow
from bot.gateways import SendError
from bot.prices import override
from bot.reconcile import ReconcileError, parse_since, reconcile


@main.group()
def flows() -> None:
    """Flow files."""


@flows.command("check")
@click.argument("names", metavar="[FLOW]...", nargs=-1)
def flows_check(names: tuple[str, ...]) -> None:
    """Lint every flow in FLOWS_DIR, or the FLOWs named (ids or .toml paths); exit 1 on errors."""
    try:
        config = Config.from_env()  # PUBLIC_URL decides whether a flow may leave out notice_url
    except ConfigError as error:
        raise click.ClickException(str(error)) from error

    def check(path: Path) -> lint.Report:
        try:
            return lint.lint_flow(load_flow(path, config.public_url))
        except FlowError as error:  # a file that fails to load is the first thing to report
            return lint.lint_error(error)

    in_dir: list[lint.Report] = []
    if not names or not all(name.endswith(".toml") for name in names):
        directory = config.flows_dir
        in_dir = [check(path) for path in flow_paths(directory)]
        if not in_dir:
            raise click.ClickException(f"no *.toml flow files in {directory}")
    checked = lint.check_ids(in_dir)
    reports = [] if names else checked
    for name in names:
        if name.endswith(".toml"):
            if not Path(name).is_file():
                raise click.BadParameter(f"{name}: no such file", param_hint="FLOW")
            reports.append(check(Path(name)))
            continue
        found = [r for r in checked if (r.flow_id or Path(r.path).stem) == name]  # unloadable: by file name
        if not found:
            known = ", ".join(sorted(r.flow_id or Path(r.path).stem for r in checked))
            raise click.BadParameter(f"no flow {name!r}; known: {known}", param_hint="FLOW")
        reports += found
    errors = warnings = 0
    for report in reports:
        click.echo(f"{report.flow_id or '(not loaded)'}: {report.path}")
        if report.rows:
            click.echo(f"  {'text':<24} {'encoding':<8} {'chars':>6} {'segments':>8}")
        for row in report.rows:
            click.echo(f"  {row.key:<24} {row.encoding:<8} {row.characters:>6} {row.segments:>8}")
            if row.forcing:
                click.echo(f"    forces UCS-2: {lint.describe(row.forcing)}")
            if row.rewrite is not None:
                click.echo(f"    in GSM-7: {row.rewrite}")
                click.echo(f"    would be {row.rewrite_segments} segment(s) in GSM-7")
        for finding in report.findings:
            click.echo(f"  {finding.level}: {report.path}: {finding.key}: {finding.message}")
        if report.request_cost is not None:
            click.echo(f"  cost: {report.request_cost} segments per {lint.PER} numbers asked (consent request); "
                       f"{report.consented_cost} per {lint.PER} consenting voters (confirmation + content[0])")
        for price in report.prices:
            click.echo(f"  price per segment: {price.describe()}")
        errors += len(report.errors)
        warnings += len(report.findings) - len(report.errors)
    click.echo(f"{len(reports)} flow file(s): {errors} error(s), {warnings} warning(s)")
    if errors:
        sys.exit(1)


@main.group()
def consent() -> None:
    """Proof of consent."""


def _archive_option(purpose: str) -> Callable[[Callable], Callable]:
    """The --archive option: FLOW's archive files, or folders holding them, read for `purpose`."""
    return click.option("--archive", "paths", multiple=True, type=click.Path(exists=True, path_type=Path),
                        help=f"Archive files of FLOW, or folders holding them: {purpose}. Repeatable "
                             "[default: the folder the workers archive to, LEDGER_ARCHIVE_DIR].")


def _or_kept(obj: Services, flow_id: str, paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """Return the archives given; else, once FLOW has entries archived off Redis, the folder the
    workers archive to (bot/archivist.py), if there is one."""
    folder = obj.accord.config.archive_dir
    if paths or folder is None or not folder.is_dir() or not ledger.base(obj.accord.store.redis, flow_id).count:
        return paths
    return (folder,)


_request_option = click.option("--request", metavar="REF",
                               help="The rights request this answers (`rights add`); kept in the audit trail.")


@consent.command("verify")
@click.argument("flow_id", metavar="FLOW")
@_archive_option("walk the chain from its very start")
@click.option("--checkpoints", "checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The flow's checkpoints file, e.g. a copy kept away from this server "
                   "[default: instance/checkpoints/FLOW.jsonl].")
@click.option("--key", "trusted_key", help="The public key checkpoints must be signed with (base64) "
                                            "[default: this server's].")
@click.pass_obj
def consent_verify(obj: Services, flow_id: str, paths: tuple[Path, ...], checkpoint_file: Path | None,
                   trusted_key: str | None) -> None:
    """Walk FLOW's ledger hash chain and report the first entry that does not fit; check it against
    the latest signed checkpoint."""
    store = obj.accord.store
    flow = obj.flow(flow_id)
    base = ledger.base(store.redis, flow.id)
    paths = _or_kept(obj, flow.id, paths)
    if paths:
        broken = (archive.verify_archived(store.redis, flow.id, paths)
                  or personal_archive.verify(store, flow.id, paths))
        _say_unrecorded(obj, flow_id, paths)
    else:
        found = store.verify_ledger(flow.id)
        broken = f"broken at entry {found}" if found else None
    if broken:
        click.echo(f"ledger of {flow_id}: {broken}")
        sys.exit(1)
    click.echo(f"ledger of {flow_id}: {len(store.ledger(flow_id))} entries, chain intact")
    _check_checkpoint(obj, flow_id, paths, checkpoint_file, trusted_key)
    if base.count and paths:
        click.echo(f"  from its start: {base.count} archived entries, checked in their files, then those in Redis")
    elif base.count:
        click.echo(f"  starting after {base.count} archived entries (the last, {base.last}, in {base.file}); "
                   f"--archive DIR checks them too")


def _check_checkpoint(obj: Services, flow_id: str, paths: tuple[Path, ...], checkpoint_file: Path | None,
                      trusted_key: str | None) -> None:
    """Check the ledger against the latest signed checkpoint; exit 1 on anything that does not hold."""
    keeper = _keeper(obj)
    redis = obj.accord.store.redis
    try:
        signed = keeper.latest(flow_id, checkpoint_file)
        if signed is None:
            click.echo(f"  no signed checkpoint yet: `ledger checkpoint {flow_id}` fixes the ledger as it stands")
            return
        signed.check(trusted_key or keeper.public_key())
        base = ledger.base(redis, flow_id)
        first = base.count
        stream = ledger.entries(redis, flow_id)
        if paths:  # the archived entries too: the whole tree is rebuilt
            stream, first = iter([*bundle.archived_entries(obj.accord, obj.flow(flow_id), paths), *stream]), 0
        wrong = checkpoints.check(signed, stream, first=first, base=None if paths else base)
    except (checkpoints.CheckpointError, archive.ArchiveError) as error:
        click.echo(f"ledger of {flow_id}: checkpoint: {error}")
        sys.exit(1)
    checkpoint = signed.checkpoint
    if wrong:
        click.echo(f"ledger of {flow_id}: not as the checkpoint of {checkpoint.at} signed it: {wrong}")
        sys.exit(1)
    after = ledger.base(redis, flow_id).count + redis.xlen(ledger.ledger_key(flow_id)) - checkpoint.size
    how = "Merkle root rebuilt from the first entry" if first == 0 else "chain head matched, archives not given"
    click.echo(f"  as signed in the checkpoint of {checkpoint.at} ({checkpoint.size} entries, root "
               f"{checkpoint.root[:16]}…, {how}); {after} entr{'y' if after == 1 else 'ies'} since, not yet "
               "checkpointed")


def _keeper(obj: Services) -> checkpoints.Keeper:
    config = obj.accord.config
    return checkpoints.keeper_for(obj.accord.store.redis, config.instance_dir, config.signing_key_path)


@consent.command("export")
@click.argument("flow_id", metavar="FLOW")
@click.option("--phone", help="Only this number [default: every number of the flow].")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="File to write [default: stdout].")
@_archive_option("the times and flow hashes of the entries archived off Redis are read from them")
@click.option("--bundle", "bundle_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="With --phone: write the voter's proof bundle here, checkable without Accord (docs/PROOF.md).")
@_request_option
@click.pass_obj
def consent_export(obj: Services, flow_id: str, phone: str | None, fmt: str, output: Path | None,
                   paths: tuple[Path, ...], bundle_path: Path | None, request: str | None) -> None:
    """Export the proof of consent of FLOW's numbers (A.6): request, answers, origin; the export is logged."""
    target = bundle_path or output
    paths = _or_kept(obj, obj.flow(flow_id).id, paths)
    _trace(obj, "consent export", phone, flow=obj.flow(flow_id).id, request=request,
           detail=f"{'bundle' if bundle_path else fmt} to {written.shown_name(target) if target else 'stdout'}")
    if bundle_path is not None:
        _export_bundle(obj, flow_id, phone, paths, bundle_path)
        return

    flow = obj.flow(flow_id)
    number = phone_argument(phone) if phone else None
    try:  # read, and the files checked, before any output is opened
        archived = proof.archived_times(obj.accord, flow, paths, number) if paths else None
    except archive.ArchiveError as error:
        raise click.ClickException(str(error)) from error
    _say_unrecorded(obj, flow_id, paths, err=True)
    if output is None:
        count = proof.export(obj.accord, flow, sys.stdout, fmt, number, archived=archived)
    else:
        with create_private(output) as file:  # it holds numbers and answers: for its owner only
            count = proof.export(obj.accord, flow, file, fmt, number, destination=written.shown_name(output),
                                 archived=archived)
        rights.keep_export(obj.accord, output)  # purged after 30 days, reached by erasure (bot/written.py)
    click.echo(f"{count} record(s) of {flow_id} exported; the export is logged in the ledger.", err=True)
    if not paths:
        _say_archived(obj, flow_id, "their times (asked_at, sent_at, answers, events) and flow hashes show blank here")


def _export_bundle(obj: Services, flow_id: str, phone: str | None, paths: tuple[Path, ...], path: Path) -> None:
    """Checkpoint the ledger, then write one voter's entries with their proofs against that checkpoint."""
    if not phone:
        raise click.UsageError("--bundle proves one voter's entries: give --phone too")
    flow, number = obj.flow(flow_id), phone_argument(phone)
    keeper = _keeper(obj)
    try:
        archived = bundle.archived_entries(obj.accord, flow, paths)
        made = bundle.build(obj.accord, flow, number, keeper, keeper.make(flow.id, obj.accord.store.clock()),
                            archived)
    except (checkpoints.CheckpointError, bundle.BundleError, archive.ArchiveError) as error:
        raise click.ClickException(str(error)) from error
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the voter's personal data
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(made, file, ensure_ascii=False, indent=1)
    rights.keep_export(obj.accord, path)  # purged after 30 days, reached by erasure (bot/written.py)
    obj.accord.store.record_export(flow, json.dumps({"operator": getpass.getuser(), "scope": "one number",
                                                     "format": "bundle", "count": len(made["entries"]),
                                                     "output": written.shown_name(path)}))
    count = len(made["entries"])
    click.echo(f"{count} entr{'y' if count == 1 else 'ies'} of {number} in {flow_id}, proven against the checkpoint of "
               f"{made['checkpoint']['at']}, written to {path}; the export is logged in the ledger.", err=True)
    click.echo(f"Check it anywhere: python bot/verifier.py {path} --key {made['key']}", err=True)


def _say_archived(obj: Services, flow_id: str, missing: str) -> None:
    """Warn that what the ledger archived off Redis is not in the report just printed."""
    base = ledger.base(obj.accord.store.redis, flow_id)
    if base.count:
        click.echo(f"Note: {base.count} older ledger entries of {flow_id} (up to {base.last}) are archived off Redis: "
                   f"{missing}. --archive DIR reads them from their archive files.", err=True)


def _say_unrecorded(obj: Services, flow_id: str, paths: tuple[Path, ...], *, err: bool = False) -> None:
    """Name the files given as archives of the flow that Redis did not record as such (they are not read)."""
    recorded = {item.file for item in archive.archives(obj.accord.store.redis, flow_id)}
    for name in sorted(set(archive.archive_files(flow_id, paths)) - recorded):
        click.echo(f"{name}: not recorded as an archive of {flow_id} (left by an interrupted run?), not read",
                   err=err)


def _trace(obj: Services, action: str, phone: str | None = None, *, flow: str = "", request: str | None = None,
           detail: str = "") -> None:
    """Record who is about to run `action` on personal data, on which number (its HMAC) and request."""
    store = obj.accord.store
    subject = store.digest(phone_argument(phone)) if phone else ""
    try:
        linked = rights_requests.record_access(store.redis, store.clock(), audit.user(), action, subject=subject,
                                               flow=flow, request=request or "", detail=detail)
    except rights_requests.RequestError as error:
        raise click.ClickException(str(error)) from error
    if request and linked is None:
        click.echo(f"Note: {request} is not in the rights register (`rights add`); recorded as given.", err=True)


@main.group()
def person() -> None:
    """What is held on one voter (GDPR art. 15, 17, 21)."""


@person.command("show")
@click.argument("phone")
@_request_option
@click.pass_obj
def person_show(obj: Services, phone: str, request: str | None) -> None:
    """Show everything held on PHONE across flows, with where it came from."""
    _trace(obj, "person show", phone, request=request)
    held = rights.show(obj.accord, phone_argument(phone))
    if not held["flows"]:
        click.echo(f"{held['phone']}: nothing held.")
    for flow_id, flow in held["flows"].items():
        click.echo(f"{held['phone']} in {flow_id}: {flow['state']}{' (objected)' if flow['objected'] else ''}")
        click.echo(f"  controller: {flow['controller']}; purpose: {flow['purpose']}")
        click.echo(f"  source: {flow['source']}; import: {flow['import'] or '-'}; notice: {flow['notice']}")
        archived = archive.archives(obj.accord.store.redis, flow_id)
        sealed = _times_kept(obj, flow_id, held["phone"]) if archived else None
        for entry in flow["ledger"]:
            if not entry["at"] and sealed is not None and (found := sealed.get(entry["entry"])):
                entry = {**entry, "at": found[0]}  # read back from the archive folder
            # An entry archived off Redis keeps its personal fields here; its time went with it to the file.
            moved = None if entry["at"] else archive.holding(archived, entry["entry"])
            at = (dt.datetime.fromtimestamp(float(entry["at"]), dt.UTC).isoformat(timespec="seconds") if entry["at"]
                  else "archived" if moved else "not in the ledger")
            click.echo(f"  {at:<25}  {entry['event']:<18} {entry['state']:<22} {entry['text']!r}"
                       + (f"  [{entry['sid']}]" if entry.get("sid") else "")
                       + (f"  (time in {moved.file}, entry {entry['entry']})" if moved else ""))


def _times_kept(obj: Services, flow_id: str, phone: str) -> archive.Sealed | None:
    """Return the times of the number's entries the workers archived, read from their folder; None
    when the folder or one of its files is not at hand (the times then show as archived)."""
    flow = obj.accord.flows.get(flow_id)
    paths = _or_kept(obj, flow_id, ()) if flow else ()
    if not paths:
        return None
    try:
        return proof.archived_times(obj.accord, flow, paths, phone)
    except archive.ArchiveError:
        return None


@person.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_request_option
@click.pass_obj
def person_erase(obj: Services, phone: str, yes: bool, request: str | None) -> None:
    """Erase PHONE everywhere, keeping only the suppression HMAC so the objection still works."""
    phone = phone_argument(phone)
    if not yes:
        click.confirm(f"Erase everything held on {phone}?", abort=True)
    _trace(obj, "person erase", phone, request=request)
    erased = rights.erase(obj.accord, phone)
    if not erased:
        click.echo(f"{phone}: nothing held; its HMAC is on the suppression lists.")
    for flow_id, count in erased.items():
        click.echo(f"{flow_id}: {count} ledger entr{'y' if count == 1 else 'ies'} erased; erasure recorded.")
    click.echo(_files_line(obj.accord))


@main.command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@_request_option
@click.pass_obj
def purge(obj: Services, dry_run: bool, request: str | None) -> None:
    """Apply the retention rules (COMPLIANCE.md D.14); safe to run daily from cron."""
    _trace(obj, "purge", request=request, detail="dry run" if dry_run else "")
    removed = rights.purge(obj.accord, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for reason, count in sorted(removed.items()):
        click.echo(f"{verb} {count}: {reason}")
    if not removed:
        click.echo("nothing is due.")
    click.echo(_files_line(obj.accord))


def _files_line(accord: Accord) -> str:
    """Say whether Redis's files still hold erased numbers: only a rewrite of them drops one (bot/compaction.py)."""
    try:
        state = compaction.backlog(accord.store.redis)
    except RedisError:
        return "Redis's files: not known whether they still hold erased numbers (Redis did not answer)."
    if not state.held:
        return ("Redis's files: no erased number left in them." if state.files
                else "Redis's files: Redis keeps none, so an erasure leaves nothing in them.")
    said = []
    if state.rewriting:
        leave = "leaves" if state.rewriting == 1 else "leave"
        said.append(f"Redis's files: being rewritten; {_erasures(state.rewriting)} {leave} them once Redis "
                    "has finished.")
    if state.waiting:
        said.append(f"Redis's files still hold {_erasures(state.waiting)} until their next rewrite, which the "
                    f"workers' upkeep asks for every {compaction.EVERY / 60:.0f} minutes at most, and the next "
                    "purge too; should it not go through, the workers' log says why.")
    return "\n".join(said)


def _erasures(count: int) -> str:
    return f"{count} erasure{'' if count == 1 else 's'}"


@main.command("reconcile")
@click.argument("flow_id", metavar="FLOW")
@click.option("--since", required=True, help="ISO 8601 moment; without an offset, in the flow's timezone.")
@click.option("--limit", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Read at most this many texts (the newest).")
@_request_option
@click.pass_obj
def reconcile_command(obj: Services, flow_id: str, since: str, limit: int, request: str | None) -> None:
    """Replay the texts the provider received on FLOW's sender since --since that the webhook missed."""

    flow = obj.flow(flow_id)
    try:
        moment = parse_since(since, flow.timezone)
    except ValueError as error:
        raise click.BadParameter(f"{since!r}: not an ISO 8601 date and time", param_hint="--since") from error
    _trace(obj, "reconcile", flow=flow.id, request=request, detail=f"since {moment.isoformat()}")
    try:
        done = reconcile(obj.accord, flow, moment, limit)
    except ReconcileError as error:
        raise click.ClickException(str(error)) from error
    except SendError as error:
        raise click.ClickException(f"The provider refused the list of received texts: {error}") from error
    click.echo(f"Reconcile of {flow_id} since {moment.isoformat()}:")
    for label, count in (("fetched", done.fetched), ("replayed", done.replayed),
                         ("already processed", done.already), ("skipped (sender not E.164)", done.skipped),
                         ("answers sent", done.sent), ("objections from its STOP list", done.objections)):
        click.echo(f"{label:>28}: {count}")
    if done.failed:
        click.echo(f"{done.failed} answer(s) failed, logged as failed sends: those the provider refused unprocessed "
                   "(throttled) go with the next reconcile if they still fit; the others, possibly sent, are "
                   "never sent twice.",
                   err=True)
    if done.unsent:
        click.echo(f"{done.unsent} campaign text(s) the bot would have sent at the time were held: the voter's window "
                   f"is shut now, or the state or an objection no longer allows them. Consented numbers get content "
                   f"with the next `content send {flow_id}`; a request held goes with the next round.")
    if done.limited:
        click.echo(f"The limit of {limit} was reached: older texts may remain. Run again with a higher --limit "
                   "(texts already processed are recognised).", err=True)


@main.group()
def report() -> None:
    """Reports: costs for the campaign's financial agent, the record of processing."""


@report.command("costs")
@click.argument("flow_id", metavar="FLOW")
@click.option("--unit-price", help="Price of one segment, in euros, for every day, instead of the prices set "
                                   "(SEGMENT_PRICES, the flow's [[prices]]).")
@_archive_option("the messages among the entries archived off Redis are counted too")
@click.pass_obj
def report_costs(obj: Services, flow_id: str, unit_price: str | None, paths: tuple[Path, ...]) -> None:
    """Print FLOW's outbound messages, segments and euros per day (its timezone) as CSV, with totals (E.18)."""

    flow = obj.flow(flow_id)
    paths = _or_kept(obj, flow.id, paths)
    try:
        prices = tariff_of(obj.accord, flow) if unit_price is None else override(parse_price(unit_price))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--unit-price") from error
    if not prices.known:
        click.echo(f"No price per segment is set for {prices.gateway} {prices.destination} (SEGMENT_PRICES, the "
                   "flow's [[prices]]) and no --unit-price given: the euro columns are left empty.", err=True)
    try:
        archived = archive.recorded_entries(obj.accord.store.redis, flow.id, paths) if paths else ()
        report = costs(obj.accord, flow, archived)
    except archive.ArchiveError as error:
        raise click.ClickException(str(error)) from error
    _say_unrecorded(obj, flow_id, paths, err=True)
    write_csv(report, sys.stdout, prices)
    if not paths and (report.from_ledger or not report.counted):  # the day counts hold the rest
        _say_archived(obj, flow_id, "the messages among them logged before the day counts began are not counted "
                                    "here")


@main.group("ledger")
def ledger_group() -> None:
    """The consent ledger's life off Redis."""


@ledger_group.command("checkpoint")
@click.argument("flow_ids", metavar="[FLOW]...", nargs=-1)
@click.pass_obj
def ledger_checkpoint(obj: Services, flow_ids: tuple[str, ...]) -> None:
    """Sign the ledger of every flow (or those named) as it stands, file it and print it.

    Run it often (e.g. every 10 minutes from cron): `consent verify` catches any rewrite of what a
    checkpoint covers, even by someone with Redis access. Keep the printed lines, or the files
    under instance/checkpoints/, somewhere this server cannot write.
    """
    keeper = _keeper(obj)
    flows = [obj.flow(flow_id) for flow_id in flow_ids] or list(obj.accord.flows.values())
    for flow in flows:
        try:
            signed = keeper.make(flow.id, obj.accord.store.clock())
        except checkpoints.CheckpointError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"{flow.id}: {signed.checkpoint.size} entries, root {signed.checkpoint.root}, "
                   f"filed in {keeper.path(flow.id)}")
        click.echo(signed.line())
    click.echo(f"signing key (public, base64): {keeper.public_key()}")


@ledger_group.command("archive")
@click.argument("flow_id", metavar="FLOW")
@click.option("--to", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder the archive file goes to (created if missing).")
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]),
              help="Only entries logged before this day, in the flow's timezone [default: any day].")
@click.option("--keep", type=click.IntRange(min=0), default=20, show_default=True,
              help="Newest entries left in Redis whatever their day (the console lists the latest 20).")
@click.pass_obj
def ledger_archive(obj: Services, flow_id: str, directory: Path, before: dt.datetime | None, keep: int) -> None:
    """Move FLOW's oldest ledger entries to a file in DIR, keeping the hash chain verifiable.

    The file is written, fsynced and read back before Redis records it as the chain's new start and
    drops those entries from the stream, in one step: an interrupted run loses nothing and can be
    run again. Personal fields stay in Redis, where access and erasure requests reach them.
    """
    flow = obj.flow(flow_id)
    redis = obj.accord.store.redis
    cutoff = dt.datetime.combine(before.date(), dt.time(), flow.timezone).timestamp() if before else None
    directory.mkdir(parents=True, exist_ok=True)
    try:  # what leaves Redis is checkpointed first, so the tree goes on from the files
        _keeper(obj).make(flow.id, obj.accord.store.clock())
    except checkpoints.CheckpointError as error:
        raise click.ClickException(str(error)) from error
    try:
        written = archive.archive(redis, flow.id, directory, keep=keep, before=cutoff)
        if written is None:
            click.echo(f"ledger of {flow_id}: nothing to archive.")
            return
        trimmed = archive.seal(redis, flow.id, written)
    except archive.ArchiveError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"ledger of {flow_id}: {written.count} entries ({written.first} to {written.last}) archived to "
               f"{directory / written.file}, sha256 {written.sha256}; {trimmed} removed from Redis.")
    if trimmed != written.count:
        click.echo(f"{written.count - trimmed} of them had been deleted from Redis meanwhile; the file holds them.")
    click.echo(f"Keep the file: `consent verify {flow_id} --archive {directory}` checks the chain from its start.")
