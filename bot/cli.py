"""Operator commands: thin wrappers that parse arguments, call the core and print a summary."""

from __future__ import annotations

import datetime as dt
import getpass
import secrets
import sys
from pathlib import Path
from xml.etree import ElementTree

import click
import requests
from twilio.request_validator import RequestValidator

from bot import Accord, audit, build, lint, proof, rights, use
from bot.config import Config, ConfigError
from bot.contacts import ContactsError
from bot.costs import costs, parse_price, write_csv
from bot.flows import Flow, FlowError, load_flow
from bot.gateway import SendError
from bot.operators import OperatorError, Operators
from bot.phones import PhoneError, normalize
from bot.reconcile import ReconcileError, parse_since, reconcile
from bot.rounds import SOURCE_TYPES, Origin, OriginError, now_iso, start_round
from bot.segments import is_gsm7, segments
from bot.workers import broadcast, resume, run_worker


def _count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


class Services:
    """Build settings and services on first use, so `--help` needs neither."""

    def __init__(self, accord: Accord | None = None) -> None:
        self._accord = accord

    @property
    def accord(self) -> Accord:
        if self._accord is None:
            try:
                self._accord = build()
            except (ConfigError, FlowError) as error:
                raise click.ClickException(str(error)) from error
        return self._accord

    def flow(self, flow_id: str) -> Flow:
        flows = self.accord.flows
        if flow_id not in flows:
            raise click.BadParameter(f"no flow {flow_id!r}; known: {', '.join(sorted(flows))}")
        return flows[flow_id]


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Accord: ask voters' consent by SMS before any campaign message."""
    ctx.ensure_object(Services)


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
@click.option("--broker", help="Who supplied the list [default: the flow's source].")
@click.option("--contract", default="", help="Reference of the contract with the broker (required for broker).")
@click.option("--operator", default=getpass.getuser, help="Who starts this round [default: your login].")
@click.pass_obj
def round_start(obj: Services, flow_id: str, contacts: Path, dry_run: bool, rate: float | None,
                source_type: str, broker: str | None, contract: str, operator: str) -> None:
    """Import CONTACTS (a CSV with a phone column) and queue FLOW's consent request to each new number."""
    flow = obj.flow(flow_id)
    accord = obj.accord
    origin = Origin(source_type=source_type, broker=broker or flow.source, contract=contract,
                    operator=operator, file=contacts.name, imported_at=now_iso(accord))
    lines = max(0, _count_lines(contacts) - 1)
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
    if report.batches:
        click.echo(f"{report.batches} batch(es) queued: workers (`python -m bot worker`) send them within "
                   "the sending window.")
    window = flow.window(accord.store.clock())
    if not window.open and window.opens_at:
        click.echo(f"The sending window is closed now ({window.reason}); it opens "
                   f"{window.opens_at:%A %d %B %Y %H:%M %Z}.")


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
    for label, count in rows:
        click.echo(f"{label:>28}: {count}")
    requests = segments(flow.texts.consent_request)
    sent = funnel.get("sent", 0)
    click.echo(f"{'segments (estimate)':>28}: {sent * requests} for {sent} messages "
               f"({requests} per consent request; {'GSM-7' if is_gsm7(flow.texts.consent_request) else 'UCS-2'})")
    click.echo(f"{'paused':>28}: {'yes' if store.is_paused(flow) else 'no'}")


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
    flow = obj.flow(flow_id)
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


@main.command()
@click.argument("phone")
@click.argument("text")
@click.option("--flow", "flow_id", default="demo", show_default=True, help="Flow whose sender is texted.")
@click.option("--url", default=None, help="Webhook base URL [default: http://127.0.0.1:PORT].")
@click.pass_obj
def reply(obj: Services, phone: str, text: str, flow_id: str, url: str | None) -> None:
    """Answer as a voter: post a correctly signed inbound text to the running webhook."""
    try:
        phone = normalize(phone)
    except PhoneError as error:
        raise click.BadParameter(f"{phone!r}: {error}") from error
    config = Config.from_env()
    target = f"{(url or config.public_url or f'http://127.0.0.1:{config.port}').rstrip('/')}/sms/inbound"
    params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32,
              "From": phone, "To": obj.flow(flow_id).sender, "Body": text, "NumMedia": "0"}
    signature = RequestValidator(config.auth_token).compute_signature(target, params)
    try:
        answer = requests.post(target, data=params, headers={"X-Twilio-Signature": signature},
                               timeout=15)
    except requests.ConnectionError as error:
        raise click.ClickException(f"no bot answering at {target}; start it with `make run`") from error
    if answer.status_code != 200:
        raise click.ClickException(f"{target} answered {answer.status_code}: {answer.text[:200]}")
    messages = [m.text or "" for m in ElementTree.fromstring(answer.text).iter("Message")]
    for message in messages:
        click.echo(f"bot → {phone}: {message}")
    if not messages:
        click.echo("(the bot stays silent)")


@main.command()
@click.argument("phone", required=False)
@click.pass_obj
def outbox(obj: Services, phone: str | None) -> None:
    """Show what the local outbox gateway would have sent (to PHONE, or to everyone)."""
    for message in obj.accord.store.outbox(normalize(phone) if phone else None):
        click.echo(f"{message['sid']}  {message['from']} → {message['to']}: {message['body']}")


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
    number = _phone(phone) if phone else None
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
    held = rights.show(obj.accord, _phone(phone))
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
    phone = _phone(phone)
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


def _phone(raw: str) -> str:
    try:
        return normalize(raw)
    except PhoneError as error:
        raise click.BadParameter(f"{raw!r}: {error}") from error



@main.group()
def operator() -> None:
    """Console operators (sign-in accounts)."""


@operator.command("add")
@click.argument("name")
@click.password_option("--password", prompt="Password", confirmation_prompt="Repeat the password",
                       help="Asked twice without echo when not given.")
@click.pass_obj
def operator_add(obj: Services, name: str, password: str) -> None:
    """Create console operator NAME; the password is kept as an argon2 hash."""

    store = obj.accord.store
    try:
        Operators(store.redis).add(name, password)
    except OperatorError as error:
        raise click.ClickException(str(error)) from error
    audit.record(store.redis, store.clock(), getpass.getuser(), "operator added", detail=name)
    click.echo(f"operator {name} added; sign in at /console/login")


@operator.command("remove")
@click.argument("name")
@click.pass_obj
def operator_remove(obj: Services, name: str) -> None:
    """Delete console operator NAME; their sessions end at their next request."""

    store = obj.accord.store
    if not Operators(store.redis).remove(name):
        raise click.ClickException(f"no operator {name!r}")
    audit.record(store.redis, store.clock(), getpass.getuser(), "operator removed", detail=name)
    click.echo(f"operator {name} removed")


@operator.command("list")
@click.pass_obj
def operator_list(obj: Services) -> None:
    """List console operators."""

    names = Operators(obj.accord.store.redis).names()
    click.echo("\n".join(names) if names else "no operator yet: python -m bot operator add NAME")


@operator.command("unlock")
@click.argument("name")
@click.pass_obj
def operator_unlock(obj: Services, name: str) -> None:
    """Lift NAME's lock-out after repeated failed sign-ins."""

    Operators(obj.accord.store.redis).unlock(name)
    click.echo(f"operator {name}: failed sign-ins forgotten")
