"""Accountability: the register of rights requests, the access trail, the record of processing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from bot import audit, processing, rights_requests
from bot.cli import Services, main, phone_argument
from bot.cli.compliance import report
from bot.rights_requests import CHANNELS, KINDS, Request, RequestError


@main.group("rights")
def rights_group() -> None:
    """The register of rights requests: each answered within one month (GDPR article 12(3))."""


@rights_group.command("add")
@click.option("--ref", required=True, help="The request's reference, e.g. the letter's or ticket's.")
@click.option("--channel", required=True, type=click.Choice(CHANNELS), help="How the request came.")
@click.option("--identity", required=True, help="How the requester's identity was checked.")
@click.option("--received", type=click.DateTime(["%Y-%m-%d"]), help="The day it came [default: today].")
@click.option("--phone", help="The number it concerns; the register keeps only its HMAC.")
@click.option("--kind", type=click.Choice(KINDS), default="access", show_default=True)
@click.pass_obj
def rights_add(obj: Services, ref: str, channel: str, identity: str, received: dt.datetime | None,
               phone: str | None, kind: str) -> None:
    """Add a rights request to the register; its deadline is one month after receipt."""
    store = obj.accord.store
    now = store.clock()
    request = Request(ref, kind, channel, identity, received.date() if received else rights_requests.today(now),
                      store.digest(phone_argument(phone)) if phone else "", audit.user(), now)
    try:
        rights_requests.add(store.redis, request)
    except RequestError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{ref}: {kind} request received {request.received} by {channel}; answer by {request.deadline} "
               f"({_status(request, rights_requests.today(now))}).")
    click.echo(f"Run `person show` or `person erase` with --request {ref}: the register lists them.")


@rights_group.command("close")
@click.argument("ref")
@click.option("--outcome", required=True, help="The answer given, e.g. 'data sent by email', 'erased'.")
@click.pass_obj
def rights_close(obj: Services, ref: str, outcome: str) -> None:
    """Record the answer to request REF and close it."""
    store = obj.accord.store
    try:
        closed = rights_requests.close(store.redis, ref, outcome, store.clock(), audit.user())
    except RequestError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{ref}: {_status(closed, rights_requests.today(closed.closed_at))}.")


@rights_group.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only the requests not answered yet.")
@click.option("--overdue", is_flag=True, help="Only the open requests past their deadline.")
@click.pass_obj
def rights_list(obj: Services, only_open: bool, overdue: bool) -> None:
    """List the register's requests, with their deadline and the days left, or overdue."""
    store = obj.accord.store
    today = rights_requests.today(store.clock())
    every = rights_requests.all_requests(store.redis)
    shown = [r for r in every if (r.is_open or not (only_open or overdue)) and (r.days_left(today) < 0 or not overdue)]
    if shown:
        click.echo(f"{'ref':<16} {'kind':<13} {'channel':<9} {'received':<10}  {'deadline':<10}  status")
    for request in shown:
        click.echo(f"{request.ref:<16} {request.kind:<13} {request.channel:<9} {request.received}  "
                   f"{request.deadline}  {_status(request, today)}")
    still = [r for r in every if r.is_open]
    click.echo(f"{len(still)} open, {sum(r.days_left(today) < 0 for r in still)} overdue, "
               f"{len(every) - len(still)} closed.")


@rights_group.command("show")
@click.argument("ref")
@click.pass_obj
def rights_show(obj: Services, ref: str) -> None:
    """Show request REF and everything done for it."""
    store = obj.accord.store
    request = rights_requests.get(store.redis, ref)
    if request is None:
        raise click.ClickException(f"{ref}: not in the register")
    click.echo(f"{ref}: {request.kind} request, received {request.received} by {request.channel}; "
               f"{_status(request, rights_requests.today(store.clock()))}")
    click.echo(f"  identity checked: {request.identity}")
    click.echo(f"  number: {request.subject[:audit.SHOWN_DIGEST] + '… (HMAC)' if request.subject else 'not given'}")
    for action in rights_requests.actions(store.redis, ref):
        when = dt.datetime.fromtimestamp(action.at, rights_requests.TZ).isoformat(timespec="seconds")
        click.echo(f"  {when}  {action.user:<12} {action.action}{f' ({action.flow})' if action.flow else ''}")


@rights_group.command("log")
@click.option("--count", type=click.IntRange(min=1), default=50, show_default=True)
@click.pass_obj
def rights_log(obj: Services, count: int) -> None:
    """List the latest accesses to personal data: who, what, on which number (HMAC) and request."""
    for item in audit.accesses(obj.accord.store.redis, count=count):
        when = dt.datetime.fromtimestamp(item.at, rights_requests.TZ).isoformat(timespec="seconds")
        click.echo(f"{when}  {item.user:<12} {item.action:<28} {item.flow:<20} {item.describe()}")


@report.command("register")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Markdown file to write [default: stdout].")
@click.pass_obj
def report_register(obj: Services, output: Path | None) -> None:
    """Write the record of processing activities (GDPR article 30) of the flows loaded, as Markdown."""
    accord = obj.built  # the flows and settings; the data in Redis is not read
    setup = processing.Setup(provider_configured=bool(accord.config.twilio_account_sid),
                             redis_transport=processing.redis_transport(accord.config.redis_url))
    text = processing.record(accord.flows.values(), setup, rights_requests.today(accord.store.clock()))
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"Record of processing written to {output}: complete what it marks **To complete**.", err=True)


def _status(request: Request, today: dt.date) -> str:
    """Say where a request stands: days left, overdue, or how it was closed."""
    if not request.is_open:
        late = (rights_requests.today(request.closed_at) - request.deadline).days
        return (f"closed {rights_requests.today(request.closed_at)}"
                f"{f', {late} day(s) late' if late > 0 else ''} by {request.closed_by}: {request.outcome}")
    left = request.days_left(today)
    if left < 0:
        return f"open, OVERDUE by {-left} day(s)"
    return f"open, {left} day(s) left" if left else "open, due today"
