"""Operator commands: thin wrappers that parse arguments, call the core and print a summary."""

from __future__ import annotations

import csv
import secrets
import sys
from pathlib import Path
from xml.etree import ElementTree

import click
import requests
from twilio.request_validator import RequestValidator

from bot import Accord, build
from bot.config import Config, ConfigError
from bot.contacts import ContactsError, read_header, read_rows
from bot.flows import Flow, FlowError
from bot.phones import PhoneError, normalize
from bot.rounds import start_round


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
@click.option("--dry-run", is_flag=True, help="Count and check the file; store and send nothing.")
@click.pass_obj
def round_start(obj: Services, flow_id: str, contacts: Path, dry_run: bool) -> None:
    """Send FLOW's consent request to every new number in CONTACTS (a CSV with a phone column)."""
    flow = obj.flow(flow_id)
    try:
        header = read_header(contacts)
    except ContactsError as error:
        raise click.ClickException(str(error)) from error
    report = start_round(obj.accord, flow, read_rows(contacts, header), dry_run=dry_run)
    if report.rejects:
        rejects = contacts.with_name(contacts.name + ".rejects.csv")
        with rejects.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["line", "value", "reason"])
            writer.writerows(report.rejects)
        for line, raw, reason in report.rejects[:20]:
            click.echo(f"line {line}: {raw!r}: {reason}", err=True)
        click.echo(f"{len(report.rejects)} rejected line(s) written to {rejects}", err=True)
    window = report.window
    if window is not None:
        opens = f"; it opens {window.opens_at:%A %d %B %Y %H:%M %Z}" if window.opens_at else ""
        click.echo(f"Sending window closed ({window.reason}){opens}. Waiting numbers were not sent;"
                   " run the round again then.")
    for outcome, count in sorted(report.counts.items()):
        click.echo(f"{outcome:>26}: {count}")


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
