"""Operator commands: thin wrappers that parse arguments, call the core and print a summary.

`python -m bot --help` lists them; each submodule holds one family and registers it on `main`.
"""

from __future__ import annotations

from pathlib import Path

import click
import redis

from bot import Accord, build
from bot.config import ConfigError
from bot.flows import Flow, FlowError
from bot.migrate import LegacyLayoutError, check_layout
from bot.phones import PhoneError, normalize


class Services:
    """Build settings and services on first use, so `--help` needs neither."""

    def __init__(self, accord: Accord | None = None) -> None:
        self._accord = accord
        self._checked = False  # whether the data in Redis is in this version's layout

    @property
    def accord(self) -> Accord:
        """The services, on a Redis whose data this version reads (else the error names `migrate`)."""
        accord = self.built
        if not self._checked:
            try:
                check_layout(accord.store, accord.flows)
            except LegacyLayoutError as error:
                raise click.ClickException(str(error)) from error
            self._checked = True
        return accord

    @property
    def built(self) -> Accord:
        """The services, whatever the data in Redis (for `migrate`)."""
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


class Commands(click.Group):
    """The operator's commands: Redis going away ends any of them with one clear line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise click.ClickException(
                f"Redis did not answer ({error}); the command stopped there. Is Redis running, and is "
                "REDIS_URL right? Run the command again once it answers: a round started again queues "
                "only the numbers not queued yet.") from error


@click.group(cls=Commands)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Accord: ask voters' consent by SMS before any campaign message."""
    ctx.ensure_object(Services)


def phone_argument(raw: str) -> str:
    try:
        return normalize(raw)
    except PhoneError as error:
        raise click.BadParameter(f"{raw!r}: {error}") from error


def count_lines(path: Path) -> int:
    """Count a file's lines without decoding it, ended by \n, \r\n or \r alone as csv reads them (for
    progress bars: a \r\n across two chunks counts twice)."""
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
                   for chunk in iter(lambda: file.read(1 << 20), b""))


# The families of commands register themselves on `main` when imported.
from bot.cli import compliance, local, rights, rounds  # noqa: E402, F401
