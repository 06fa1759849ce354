"""Local tools and accounts: answer as a voter, read the outbox, console operators."""

from __future__ import annotations

import getpass
import secrets
from xml.etree import ElementTree

import click
import requests
from twilio.request_validator import RequestValidator

from bot import address, audit, migrate, threads
from bot.cli import Services, main, phone_argument
from bot.cli.rounds import window_line
from bot.flows import Flow
from bot.operators import LANGUAGES, ROLES, OperatorError, Operators
from bot.windows import describe


@main.command()
@click.argument("phone")
@click.argument("text")
@click.option("--flow", "flow_id", default="demo", show_default=True, help="Flow whose sender is texted.")
@click.option("--url", default=None,
              help="Webhook base URL [default: PUBLIC_URL, else where the running bot said it answers "
                   "(instance/address), else http://127.0.0.1:PORT].")
@click.pass_obj
def reply(obj: Services, phone: str, text: str, flow_id: str, url: str | None) -> None:
    """Answer as a voter: post a correctly signed inbound text to the running webhook.

    With the sending window shut, also say so, when it opens, and which texts it held back.
    """
    phone = phone_argument(phone)
    flow = obj.flow(flow_id)
    store, config = obj.accord.store, obj.accord.config
    base = url or config.public_url or address.running(config.instance_dir) or f"http://127.0.0.1:{config.port}"
    target = f"{base.rstrip('/')}/sms/inbound"
    params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32,
              "From": phone, "To": flow.sender, "Body": text, "NumMedia": "0"}
    signature = RequestValidator(config.auth_token).compute_signature(target, params)
    before = store.state(flow, phone)
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
    held = threads.answered(store, flow, phone, before, text)
    if held is not None:
        click.echo(describe(held.window))
        echo_held(flow, held.texts)


@main.command()
@click.argument("phone", required=False)
@click.pass_obj
def outbox(obj: Services, phone: str | None) -> None:
    """Show what each number received, as the dev phone does: consent requests, answers and the voter's texts.

    Without PHONE, every number the local outbox texted. With the sending window shut, say so, when
    it opens, and whether a round's consent request waits for it.
    """
    store, flows = obj.accord.store, list(obj.accord.flows.values())
    phones = [phone_argument(phone)] if phone else list(dict.fromkeys(m["to"] for m in store.outbox()))
    shown = False
    for number in phones:
        for flow in flows:
            messages, held = threads.thread(store, flow, number), threads.waiting(store, flow, number)
            if not messages and not (held and held.texts):
                continue
            shown = True
            click.echo(f"{number} ↔ {flow.sender} ({flow.id}, {store.state(flow, number)})")
            for message in messages:
                who = "bot" if message["from"] == "bot" else "voter"
                click.echo(f"  {message['time']}  {who:<5}  {message['body']}")
            if held is not None:
                click.echo(f"  {describe(held.window)}")
                echo_held(flow, held.texts, indent="  ")
    if phone and not shown:
        click.echo(f"{phones[0]}: nothing sent or received yet.")
    if not phones:
        click.echo("The outbox has texted nobody yet.")
    if not shown:
        for flow in flows:  # a round's requests may be waiting for the window: say why nothing went
            if store.funnel(flow).get("import:queued") and not flow.is_open(store.clock()):
                click.echo(f"{flow.id}: {window_line(flow, store.clock())}")


def echo_held(flow: Flow, texts: tuple[str, ...], indent: str = "") -> None:
    """Print the texts a shut window held back, and how held content goes later."""
    for text in texts:
        click.echo(f"{indent}held back: {text}")
    if set(texts) & set(flow.texts.content):
        click.echo(f"{indent}(`python -m bot content send {flow.id}` sends content to consented numbers "
                   "once the window is open.)")


@main.group()
def operator() -> None:
    """Console operators (sign-in accounts)."""


ROLE_HELP = "admin: pauses and resumes sending; viewer: reads the console, changes nothing."


@operator.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), prompt="Role (admin or viewer)", help=ROLE_HELP)
@click.password_option("--password", prompt="Password", confirmation_prompt="Repeat the password",
                       help="Asked twice without echo when not given.")
@click.option("--language", type=click.Choice(LANGUAGES), default=None,
              help="The console's language for this operator; without it, their browser's (French by default). "
                   "They can switch it in the console's header.")
@click.pass_obj
def operator_add(obj: Services, name: str, role: str, password: str, language: str | None) -> None:
    """Create console operator NAME with a role; the password is kept as an argon2 hash."""

    store = obj.accord.store
    try:
        Operators(store.redis).add(name, password, role)
        if language:
            Operators(store.redis).set_language(name, language)
    except OperatorError as error:
        raise click.ClickException(str(error)) from error
    audit.record(store.redis, store.clock(), getpass.getuser(), "operator added", detail=f"{name}, {role}")
    click.echo(f"operator {name} ({role}) added; sign in at /console/login")


@operator.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_obj
def operator_role(obj: Services, name: str, role: str) -> None:
    """Give console operator NAME another ROLE (admin or viewer), from their next page on."""

    store = obj.accord.store
    if not Operators(store.redis).set_role(name, role):
        raise click.ClickException(f"no operator {name!r}")
    audit.record(store.redis, store.clock(), getpass.getuser(), "operator role", detail=f"{name}, {role}")
    click.echo(f"operator {name} is now {role}")


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
    """List console operators and their roles."""

    roles = Operators(obj.accord.store.redis).roles()
    width = max((len(name) for name, _ in roles), default=0)
    click.echo("\n".join(f"{name:<{width}}  {role}" for name, role in roles) if roles
               else "no operator yet: python -m bot operator add NAME --role admin")


@operator.command("unlock")
@click.argument("name")
@click.pass_obj
def operator_unlock(obj: Services, name: str) -> None:
    """Lift NAME's lock-out after repeated failed sign-ins."""

    Operators(obj.accord.store.redis).unlock(name)
    click.echo(f"operator {name}: failed sign-ins forgotten")


@main.command("migrate")
@click.pass_obj
def migrate_command(obj: Services) -> None:
    """Convert data an earlier version wrote into this version's layout; run it with the bot stopped."""
    accord = obj.built
    jobs = migrate.migrate_jobs(accord)
    if jobs:
        click.echo(f"{jobs} job(s) carrying numbers now name a stored batch instead (or, finished, are gone).")
    seen = migrate.migrate_seen(accord.store)
    if seen:
        click.echo(f"{seen} inbound text(s) an earlier version processed are now known for good (a replay changes "
                   "nothing).")
    found = migrate.legacy_flows(accord.store, migrate.held_flows(accord.store, accord.flows))
    if not found and (jobs or seen):
        return
    if not found:
        click.echo("Nothing to migrate: the data is already in this version's layout.")
        return
    for flow_id in found:
        moved = migrate.migrate_states(accord.store, flow_id)
        click.echo(f"{flow_id}: {moved} number state(s) moved to the current layout.")


@main.group("states")
def states_group() -> None:
    """The numbers' state records."""


@states_group.command("check")
@click.argument("flow_ids", metavar="[FLOW]...", nargs=-1)
@click.pass_obj
def states_check(obj: Services, flow_ids: tuple[str, ...]) -> None:
    """List state records that cannot be read, in every flow or the FLOWs named; exit 1 if any.

    Such a record refuses everything but an objection (which overwrites it): each needs a person's
    look, e.g. `person show` then `person erase`, or the value restored from a backup.
    """
    flows = [obj.flow(flow_id) for flow_id in flow_ids] or list(obj.accord.flows.values())
    found = 0
    for flow in flows:
        for phone, value in obj.accord.store.unreadable(flow):
            click.echo(f"{flow.id}: {phone}: unreadable state record {value!r}")
            found += 1
    click.echo(f"{len(flows)} flow(s): {found} unreadable state record(s)")
    if found:
        raise SystemExit(1)
