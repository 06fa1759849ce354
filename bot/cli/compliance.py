"""Showing the rules hold: flow lint, consent proof, rights, retention, reconcile, costs."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bot import lint, proof, rights
from bot.cli import Services, main, phone_argument
from bot.config import Config, ConfigError
from bot.costs import costs, parse_price, write_csv
from bot.flows import FlowError, load_flow
from bot.gateway import SendError
from bot.reconcile import ReconcileError, parse_since, reconcile


@main.group()
def flows() -> None:
    """Flow files."""


@flows.command("check")
@click.argument("names", metavar="[FLOW]...", nargs=-1)
def flows_check(names: tuple[str, ...]) -> None:
    """Lint every flow in FLOWS_DIR, or the FLOWs named (ids or .toml paths); exit 1 on errors."""

    def check(path: Path) -> lint.Report:
        try:
            return lint.lint_flow(load_flow(path))
        except FlowError as error:  # a file that fails to load is the first thing to report
            return lint.lint_error(error)

    in_dir: list[lint.Report] = []
    if not names or not all(name.endswith(".toml") for name in names):
        try:
            directory = Config.from_env().flows_dir
        except ConfigError as error:
            raise click.ClickException(str(error)) from error
        in_dir = [check(path) for path in sorted(directory.glob("*.toml"))]
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
        errors += len(report.errors)
        warnings += len(report.findings) - len(report.errors)
    click.echo(f"{len(reports)} flow file(s): {errors} error(s), {warnings} warning(s)")
    if errors:
        sys.exit(1)


@main.group()
def consent() -> None:
    """Proof of consent."""


@consent.command("verify")
@click.argument("flow_id", metavar="FLOW")
@click.pass_obj
def consent_verify(obj: Services, flow_id: str) -> None:
    """Walk FLOW's ledger hash chain and report the first entry that does not fit."""
    broken = obj.accord.store.verify_ledger(obj.flow(flow_id).id)
    if broken:
        click.echo(f"ledger of {flow_id}: broken at entry {broken}")
        sys.exit(1)
    click.echo(f"ledger of {flow_id}: {len(obj.accord.store.ledger(flow_id))} entries, chain intact")


@consent.command("export")
@click.argument("flow_id", metavar="FLOW")
@click.option("--phone", help="Only this number [default: every number of the flow].")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="File to write [default: stdout].")
@click.pass_obj
def consent_export(obj: Services, flow_id: str, phone: str | None, fmt: str, output: Path | None) -> None:
    """Export the proof of consent of FLOW's numbers (A.6): request, answers, origin; the export is logged."""

    flow = obj.flow(flow_id)
    number = phone_argument(phone) if phone else None
    if output is None:
        count = proof.export(obj.accord, flow, sys.stdout, fmt, number)
    else:
        with output.open("w", encoding="utf-8", newline="") as file:
            count = proof.export(obj.accord, flow, file, fmt, number, destination=output.name)
    click.echo(f"{count} record(s) of {flow_id} exported; the export is logged in the ledger.", err=True)


@main.group()
def person() -> None:
    """What is held on one voter (GDPR art. 15, 17, 21)."""


@person.command("show")
@click.argument("phone")
@click.pass_obj
def person_show(obj: Services, phone: str) -> None:
    """Show everything held on PHONE across flows, with where it came from."""
    held = rights.show(obj.accord, phone_argument(phone))
    if not held["flows"]:
        click.echo(f"{held['phone']}: nothing held.")
    for flow_id, flow in held["flows"].items():
        click.echo(f"{held['phone']} in {flow_id}: {flow['state']}{' (objected)' if flow['objected'] else ''}")
        click.echo(f"  controller: {flow['controller']}; purpose: {flow['purpose']}")
        click.echo(f"  source: {flow['source']}; import: {flow['import'] or '-'}; notice: {flow['notice']}")
        for entry in flow["ledger"]:
            at = dt.datetime.fromtimestamp(float(entry["at"] or 0), dt.UTC).isoformat(timespec="seconds")
            click.echo(f"  {at}  {entry['event']:<18} {entry['state']:<22} {entry['text']!r}"
                       + (f"  [{entry['sid']}]" if entry.get("sid") else ""))


@person.command("erase")
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def person_erase(obj: Services, phone: str, yes: bool) -> None:
    """Erase PHONE everywhere, keeping only the suppression HMAC so the objection still works."""
    phone = phone_argument(phone)
    if not yes:
        click.confirm(f"Erase everything held on {phone}?", abort=True)
    erased = rights.erase(obj.accord, phone)
    if not erased:
        click.echo(f"{phone}: nothing held; its HMAC is on the suppression lists.")
    for flow_id, count in erased.items():
        click.echo(f"{flow_id}: {count} ledger entr{'y' if count == 1 else 'ies'} erased; erasure recorded.")


@main.command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.pass_obj
def purge(obj: Services, dry_run: bool) -> None:
    """Apply the retention rules (COMPLIANCE.md D.14); safe to run daily from cron."""
    removed = rights.purge(obj.accord, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for reason, count in sorted(removed.items()):
        click.echo(f"{verb} {count}: {reason}")
    if not removed:
        click.echo("nothing is due.")


@main.command("reconcile")
@click.argument("flow_id", metavar="FLOW")
@click.option("--since", required=True, help="ISO 8601 moment; without an offset, in the flow's timezone.")
@click.option("--limit", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Read at most this many texts (the newest).")
@click.pass_obj
def reconcile_command(obj: Services, flow_id: str, since: str, limit: int) -> None:
    """Replay the texts Twilio received on FLOW's sender since --since that the webhook missed."""

    flow = obj.flow(flow_id)
    try:
        moment = parse_since(since, flow.timezone)
    except ValueError as error:
        raise click.BadParameter(f"{since!r}: not an ISO 8601 date and time", param_hint="--since") from error
    try:
        done = reconcile(obj.accord, flow, moment, limit)
    except ReconcileError as error:
        raise click.ClickException(str(error)) from error
    except SendError as error:
        raise click.ClickException(f"Twilio refused the list of received texts: {error}") from error
    click.echo(f"Reconcile of {flow_id} since {moment.isoformat()}:")
    for label, count in (("fetched", done.fetched), ("replayed", done.replayed),
                         ("already processed", done.already), ("skipped (sender not E.164)", done.skipped)):
        click.echo(f"{label:>28}: {count}")
    if done.unsent:
        click.echo(f"{done.unsent} answer(s) the bot would have sent at the time were not sent (the voters wrote "
                   f"earlier); consented numbers get content with the next `content send {flow_id}`.")
    if done.limited:
        click.echo(f"The limit of {limit} was reached: older texts may remain. Run again with a higher --limit "
                   "(texts already processed are recognised).", err=True)


@main.group()
def report() -> None:
    """Reports for the campaign's financial agent."""


@report.command("costs")
@click.argument("flow_id", metavar="FLOW")
@click.option("--unit-price", help="Price of one segment, in euros [default: 0].")
@click.pass_obj
def report_costs(obj: Services, flow_id: str, unit_price: str | None) -> None:
    """Print FLOW's outbound messages and segments per day (its timezone) as CSV, with totals (E.18)."""

    flow = obj.flow(flow_id)
    try:
        price = parse_price(unit_price or "0")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--unit-price") from error
    if unit_price is None:
        click.echo("No --unit-price given: totals are 0 EUR.", err=True)
    write_csv(costs(obj.accord, flow), sys.stdout, price)
