"""Accord: an SMS bot that asks voters' consent before any campaign message."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from bot.config import Config
from bot.embedded import ensure_embedded
from bot.flows import Flow, FlowError, load_flows
from bot.gateways import Gateway
from bot.gateways.outbox import OutboxGateway
from bot.gateways.ovh import OvhGateway
from bot.gateways.twilio import TwilioGateway
from bot.signatures import Validator
from bot.store import Store


@dataclass
class Accord:
    """The collaborators every entry point shares, built once per process."""

    config: Config
    store: Store
    flows: dict[str, Flow]
    gateway: Gateway  # the default: flows naming no provider send through it
    gateways: dict[str, Gateway] = field(default_factory=dict)  # every provider configured, by name
    validator: Validator = field(init=False)
    default_provider: str = field(init=False)
    _by_sender: dict[str, tuple[Flow, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.validator = Validator(self.config.auth_token)
        self.default_provider = getattr(self.gateway, "name", "")
        self.gateways.setdefault(self.default_provider, self.gateway)
        by_sender: dict[str, list[Flow]] = {}
        for flow in self.flows.values():
            by_sender.setdefault(flow.sender, []).append(flow)
        self._by_sender = {sender: tuple(flows) for sender, flows in by_sender.items()}

    def flows_for(self, to: str, messaging_service_sid: str = "") -> tuple[Flow, ...]:
        """Return the flows a text to this number (or Messaging Service) may answer."""
        return self._by_sender.get(messaging_service_sid) or self._by_sender.get(to, ())

    def provider_of(self, flow: Flow) -> str:
        """Name the provider `flow` sends through ("twilio", "ovh", "outbox")."""
        return flow.gateway or self.default_provider

    def gateway_for(self, flow: Flow) -> Gateway:
        """Return the gateway `flow` sends through: the one it names, else the default.

        The default is `gateway` itself, read at each call, so a process (or a test) that swaps it
        sends every default flow through the new one.
        """
        if not flow.gateway or flow.gateway == self.default_provider:
            return self.gateway
        return self.gateways[flow.gateway]

    def status_url(self, flow: Flow) -> str | None:
        """Return the URL the provider of `flow` reports delivery to (None without PUBLIC_URL)."""
        base = self.config.public_url
        if not base:
            return None
        if self.provider_of(flow) == "ovh" and self.config.ovh:
            return f"{base}/sms/ovh/{self.config.ovh.callback_secrets[0]}/status"
        return f"{base}/sms/status"


def build(config: Config | None = None, *, gateway: Gateway | None = None,
          gateways: Mapping[str, Gateway] | None = None, clock: Callable[[], float] = time.time) -> Accord:
    """Build the Redis client, store, flows and gateways from the settings.

    `gateway` is the default provider (else Twilio when configured, else OVHcloud, else the local
    outbox); `gateways` adds providers by name, as tests give them. A flow naming a provider the
    settings do not configure stops the start, naming the file.
    """
    config = config or Config.from_env()
    flows = load_flows(config.flows_dir, config.public_url)
    url = config.redis_url or ensure_embedded(config.instance_dir)
    # No retries inside the client: with Redis away the webhook must answer 503 within one timeout,
    # so Twilio's retry (or reconcile) brings the text back, rather than hang past Twilio's 15 s.
    client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    store = Store(client, config.suppression_key, clock=clock, flows=flows, personal_dir=config.archive_dir,
                  ovh_service=config.ovh.service if config.ovh else "")
    providers = dict(gateways or {})
    if config.twilio_account_sid and "twilio" not in providers:
        providers["twilio"] = TwilioGateway(config.twilio_account_sid, config.auth_token,
                                            api_url=config.twilio_api_url, concurrency=config.send_concurrency)
    if config.ovh and "ovh" not in providers:
        providers["ovh"] = OvhGateway(config.ovh, concurrency=config.send_concurrency)
    if gateway is None:
        gateway = providers.get("twilio") or providers.get("ovh") or OutboxGateway(store)
    accord = Accord(config, store, flows, gateway, providers)
    for flow in flows.values():
        if flow.gateway and flow.gateway not in accord.gateways:
            settings = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN" if flow.gateway == "twilio" else "the OVH_ settings"
            raise FlowError(flow.path, "gateway", f"{flow.gateway!r} is not configured: set {settings}, "
                            "or send this flow through the configured provider")
    return accord


_current: Accord | None = None


def use(accord: Accord) -> None:
    """Make `accord` the services this process's jobs run with (a worker sets it once)."""
    global _current
    _current = accord


def current() -> Accord:
    """Return this process's services, building them from the settings on first use."""
    if _current is None:
        use(build())
    assert _current is not None
    return _current


def create_app(config: Config | None = None, *, gateway: Gateway | None = None,
               gateways: Mapping[str, Gateway] | None = None, clock: Callable[[], float] = time.time) -> Flask:
    """Build the web application."""
    from bot.gateways.ovh_webhook import bp as ovh_bp
    from bot.webhook import bp

    accord = build(config, gateway=gateway, gateways=gateways, clock=clock)
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.extensions["accord"] = accord
    app.register_blueprint(bp)
    app.register_blueprint(ovh_bp)
    from bot.web import init_ui  # the console, and the dev phone with the local outbox

    init_ui(app)
    if not accord.config.public_url:
        # Behind one proxy, rebuild the URL Twilio called from X-Forwarded-* for signatures.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1, x_port=1, x_prefix=1)  # type: ignore[method-assign]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app


def create_server_app(config: Config | None = None, *, gateway: Gateway | None = None,
                      clock: Callable[[], float] = time.time) -> Flask:
    """Build the web application for a long-lived server process (wsgi.py).

    Everything built at startup (flows, holiday calendars, templates, the libraries) lives as
    long as the process: it is frozen out of the garbage collector's way, so the full
    collections that requests set off now and then no longer walk it.
    """
    app = create_app(config, gateway=gateway, clock=clock)
    accord = app.extensions["accord"]
    from bot.migrate import check_layout

    try:
        check_layout(accord.store, accord.flows)  # LegacyLayoutError: the data needs `python -m bot migrate`
        accord.store.remember_versions(list(accord.flows.values()))
    except (RedisConnectionError, RedisTimeoutError):
        logging.getLogger(__name__).warning("Redis unavailable at startup: its data layout is not checked")
    gc.freeze()
    return app
