"""The privacy and political-advertising notice of a flow, served at /notice/<flow_id>.

The voter follows the link of the consent request to it, so it is public: no sign-in, no
session, no cookie. It states what GDPR art. 13/14 and Regulation (EU) 2024/900 ask, from the
flow file and from what the bot recorded (the imports' origins, the messages sent so far).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from flask import Blueprint, abort, current_app, render_template, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.wrappers import Response

from bot import Accord, notice, proof
from bot.costs import costs, spent, tariff_of
from bot.flows import LANGUAGES, Flow
from bot.prices import Price, cents
from bot.rights import RETENTION_DAYS
from bot.web.dashboard import count

bp = Blueprint("notice", __name__)
MAX_AGE = 300  # seconds a browser or proxy may keep the page: its figures move slowly
# Only the app's own stylesheet; no script at all.
POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
          "form-action 'none'")


@dataclass(frozen=True)
class Recorded:
    """What the bot recorded for the flow, as the notice shows it; None where Redis could not be read."""

    imports: list[notice.Import] | None
    messages: int | None
    segments: int | None
    amount: Decimal | None  # None: no price is set, or Redis could not be read
    prices: tuple[Price, ...] = ()  # the prices per segment the amount was worked out at


def _accord() -> Accord:
    return current_app.extensions["accord"]


@bp.get("/notice/<flow_id>")
def page(flow_id: str) -> Response:
    """Render the flow's notice in the language asked (`?lang=en`), else the flow's own."""
    accord = _accord()
    flow = accord.flows.get(flow_id)
    if flow is None:
        abort(404)
    asked = request.args.get("lang", "")
    language = asked if asked in LANGUAGES else flow.language
    body = render_template(
        f"notice/{language}.html", lang=language, other="en" if language == "fr" else "fr", flow=flow,
        notice=flow.notice, recorded=_figures(accord, flow), provider=accord.provider_of(flow),
        short_retention=min(RETENTION_DAYS, flow.retention_days),
        period_end=notice.period_end(flow.end_date, flow.poll_dates), source_types=notice.SOURCE_TYPES[language],
        today=dt.datetime.fromtimestamp(accord.store.clock(), flow.timezone).date(),
        long_date=partial(notice.long_date, language=language), contact_link=notice.contact_link, number=count,
        euros=partial(notice.euros, language=language),
    )
    response = Response(body, mimetype="text/html")
    response.headers["Content-Language"] = language
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _figures(accord: Accord, flow: Flow) -> Recorded:
    """Read the flow's figures at most once per MAX_AGE in this app: the page is public, and the
    reading scans Redis, so a crowd (or a loop) reloading it costs one reading every few minutes."""
    held: dict[str, tuple[float, Recorded]] = current_app.extensions.setdefault("notice_figures", {})
    now = accord.store.clock()
    if flow.id in held and held[flow.id][0] > now:
        return held[flow.id][1]
    recorded = _recorded(accord, flow)
    if recorded.messages is not None:  # with Redis away, try again at the next request
        held[flow.id] = (now + MAX_AGE, recorded)
    return recorded


def _recorded(accord: Accord, flow: Flow) -> Recorded:
    """Read the imports, the messages sent so far and what they cost.

    Without a price per segment set for the flow's provider the amount stays unavailable, never guessed.
    """
    try:
        imports = notice.imports(origin for _, origin in proof.import_origins(accord, flow))
        report = costs(accord, flow)
    except (RedisConnectionError, RedisTimeoutError):  # the rest of the notice still holds
        return Recorded(None, None, None, None)
    prices = tariff_of(accord, flow)
    bill = spent(report, prices)
    return Recorded(imports, bill.messages, bill.segments, None if bill.euros is None else cents(bill.euros),
                    bill.prices or prices.prices[-1:])
