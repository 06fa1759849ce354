"""Consent rounds and what sends: import, status, pause and resume, content, workers."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from bot import use, witness, written
from bot.cli import Services, count_lines, main
from bot.contacts import ContactsError
from bot.costs import costs, rest_of_round, spent, tariff_of
from bot.flows import Flow
from bot.prices import cents
from bot.replies import normalize
from bot.rounds import POSTCODE_NOT_READ, SOURCE_TYPES, Origin, OriginError, now_iso, start_round
from bot.segments import is_gsm7, segments
from bot.windows import describe
from bot.workers import broadcast, resume, run_worker


def sending_flow(obj: Services, flow_id: str) -> Flow:
    """Return the flow, or stop with the reason if its end date has passed: nothing more goes for it."""
    flow = obj.flow(flow_id)
    if flow.has_ended(obj.accord.store.clock()):
        raise click.ClickException(f"{flow.id} ended on {flow.end_date} (its end_date): no consent request "
                                   "or content is sent for it any more.")
    return flow


@main.group("round")
def round_group() -> None:
    """Consent rounds."""


@round_group.command("start")
@click.argument("flow_id", metavar="FLOW")
@click.argument("contacts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and count the file; store and send nothing.")
@click.option("--rate", type=click.FloatRange(min=1), help="Messages per second from the sender, for all workers.")
@click.option("--source-type", default="broker", show_default=True,
              help=f"Where the list comes from: {', '.join(SOURCE_TYPES)}.")
@click.option("--broker", help="Who supplied the list, as the flow's source names it [default: the flow's source].")
@click.option("--contract", default="", help="Reference of the contract with the broker (required for broker).")
@click.option("--operator", default=getpass.getuser, help="Who starts this round [default: your login].")
@click.pass_obj
def round_start(obj: Services, flow_id: str, contacts: Path, dry_run: bool, rate: float | None,
                source_type: str, broker: str | None, contract: str, operator: str) -> None:
    """Import CONTACTS (a CSV with a phone column) and queue FLOW's consent request to each new number."""
    flow = sending_flow(obj, flow_id)
    accord = obj.accord
    if broker is not None and not names(flow.source, broker):
        # The consent request tells each voter where their number came from (GDPR art. 14): the
        # ledger's origin must be that same source, or the proof contradicts the SMS.
        raise click.ClickException(
            f"--broker {broker!r}: {flow.id}'s consent request tells voters their number comes from "
            f"{flow.source!r} (the flow's `source`), which does not name {broker!r}. The SMS and the ledger would "
            "name different sources: give the broker the flow names, or use a flow whose `source` names this one.")
    origin = Origin(source_type=source_type, broker=broker or flow.source, contract=contract,
                    operator=operator, file=written.shown_name(contacts), imported_at=now_iso(accord))
    lines = max(0, count_lines(contacts) - 1)
    try:
        with click.progressbar(length=lines, label="Importing", file=sys.stderr) as bar:
            report = start_round(accord, flow, contacts, origin, dry_run=dry_run, rate=rate, progress=bar.update)
    except (ContactsError, OriginError) as error:
        raise click.ClickException(str(error)) from error
    for line, raw, reason in report.shown_rejects:
        click.echo(f"line {line}: {raw!r}: {reason}", err=True)
    if report.rejects_file:
        click.echo(f"{report.counts['rejected']} rejected line(s) written to {report.rejects_file}", err=True)
    click.echo(("Dry run: nothing stored or sent.\n" if dry_run else "") + f"Round of {flow.id}:")
    for name in ("imported", "rejected", "duplicate", "suppressed", "already asked",
                 "waiting for another flow's answer", "queued"):
        click.echo(f"{name:>34}: {report.counts[name]}")
    for reason, count in sorted(report.rejects_by_reason.items()):
        click.echo(f"{'rejected: ' + reason:>34}: {count}")
    if report.counts[POSTCODE_NOT_READ]:
        click.echo(f"{report.counts[POSTCODE_NOT_READ]} postcode value(s) held no French postcode (5 digits), "
                   "or more than one: those numbers follow the national holidays only.")
    if report.recovered:
        click.echo(f"{report.recovered} batch(es) an interrupted import had admitted are queued now.")
    if report.batches:
        click.echo(f"{report.batches} batch(es) queued: workers (`python -m bot worker`) send them within "
                   "the sending window.")
    if not flow.is_open(accord.store.clock()):
        click.echo(window_line(flow, accord.store.clock()))


def window_line(flow: Flow, now: float) -> str:
    """Say whether FLOW may send now (in mainland France's calendar) and, if not, why and when it may."""
    window = flow.window(now)
    return describe(window, flow.closes_at(now) if window.open else None)


def names(source: str, broker: str) -> bool:
    """Say whether a flow's `source` names `broker` (whole words, whatever the case, accents and punctuation)."""
    wanted = normalize(broker)
    return bool(wanted) and f" {wanted} " in f" {normalize(source)} "


@round_group.command("status")
@click.argument("flow_id", metavar="FLOW")
@click.pass_obj
def round_status(obj: Services, flow_id: str) -> None:
    """Show FLOW's funnel: imported, rejected, asked, delivered, answered ... and the cost so far."""
    flow = obj.flow(flow_id)
    store = obj.accord.store
    funnel = store.funnel(flow)
    rows = [("imported", funnel.get("import:imported", 0))]
    rows += [(f"rejected: {name[16:]}", n) for name, n in sorted(funnel.items()) if name.startswith("import:rejected:")]
    rows += [(label, funnel.get(name, 0)) for label, name in (
        ("duplicates", "import:duplicate"), ("suppressed", "import:suppressed"),
        ("already asked", "import:already asked"), ("waiting (another flow)", "import:waiting"),
        ("queued", "import:queued"), ("asked (sent)", "sent"), ("send failed", "send_failed"),
        ("delivered", "status:delivered"), ("undelivered", "status:undelivered"), ("failed", "status:failed"),
        ("pending answer", "pending"), ("consented", "consented"), ("declined", "declined"),
        ("opted out", "opted_out"), ("expired", "expired"))]
    rows += [(f"content {name[8:]} sent", n) for name, n in sorted(funnel.items()) if name.startswith("content:")]
    # Claims whose send a crash, a timeout or a 5xx left unknown, settled with the provider (bot/witness.py).
    rows += [("found sent at the provider", funnel.get("witness:found", 0)),
             ("not found there, sent again", funnel.get("witness:again", 0)),
             ("in flight now", len(store.in_flight(flow)))]
    for label, count in rows:
        click.echo(f"{label:>28}: {count}")
    requests = segments(flow.texts.consent_request)
    sent = funnel.get("sent", 0)
    click.echo(f"{'segments (estimate)':>28}: {sent * requests} for {sent} messages "
               f"({requests} per consent request; {'GSM-7' if is_gsm7(flow.texts.consent_request) else 'UCS-2'})")
    click.echo(f"{'euros':>28}: {euros_line(obj, flow, funnel)}")
    click.echo(f"{'paused':>28}: {'yes' if store.is_paused(flow) else 'no'}")
    click.echo(window_line(flow, store.clock()))


def euros_line(obj: Services, flow: Flow, funnel: dict[str, int]) -> str:
    """Say what FLOW spent so far, and the most asking the rest of its round would cost, at the prices set."""
    prices = tariff_of(obj.accord, flow)
    if not prices.known:
        return (f"no price per segment set for {prices.gateway} {prices.destination} "
                "(SEGMENT_PRICES or the flow's [[prices]])")
    bill = spent(costs(obj.accord, flow), prices)
    left, rest = rest_of_round(flow, funnel, prices)
    assert bill.euros is not None and rest is not None and prices.current is not None  # a price is set
    return (f"{cents(bill.euros)} EUR spent so far ({bill.segments} segments); asking the {left} queued number(s) "
            f"not sent yet: at most {cents(rest)} EUR more (price: {prices.current.describe()})")


@round_group.command("pause")
@click.argument("flow_id", metavar="FLOW")
@click.pass_obj
def round_pause(obj: Services, flow_id: str) -> None:
    """Stop sending for FLOW from the next number on; nothing is lost or repeated."""
    obj.accord.store.pause(obj.flow(flow_id))
    click.echo(f"{flow_id}: paused. Workers park what they hold; `round resume {flow_id}` sends it.")


@round_group.command("resume")
@click.argument("flow_id", metavar="FLOW")
@click.pass_obj
def round_resume(obj: Services, flow_id: str) -> None:
    """Restart sending for FLOW: parked batches, and batches a dead worker left unfinished."""
    flow = obj.flow(flow_id)
    parked, recovered = resume(obj.accord, flow)
    click.echo(f"{flow_id}: resumed; {parked} parked batch(es) and {recovered} interrupted batch(es) queued again.")
    settled = witness.sweep(obj.accord, [flow])
    if settled:
        click.echo(f"Claims in flight for over {witness.GRACE / 60:g} minutes, settled with the provider: "
                   + ", ".join(f"{count} {how}" for how, count in sorted(settled.items())) + ".")


@main.group()
def content() -> None:
    """Campaign content, to consented numbers only."""


@content.command("send")
@click.argument("flow_id", metavar="FLOW")
@click.option("--message", "message", type=click.IntRange(min=1), default=1, show_default=True,
              help="Which of the flow's content messages (1 is the first).")
@click.pass_obj
def content_send(obj: Services, flow_id: str, message: int) -> None:
    """Queue content message N of FLOW for every consented number (checked again at sending)."""
    flow = sending_flow(obj, flow_id)
    if message > len(flow.texts.content):
        raise click.BadParameter(f"{flow_id} has {len(flow.texts.content)} content message(s)")
    numbers, batches = broadcast(obj.accord, flow, message)
    click.echo(f"{flow_id}: content {message} queued for {numbers} consented number(s) in {batches} batch(es).")


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.pass_obj
def worker(obj: Services, burst: bool) -> None:
    """Run a sending worker (any number may run, on any machine sharing the Redis)."""
    accord = obj.accord
    use(accord)
    run_worker(accord, burst=burst)
