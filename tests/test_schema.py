"""docs/openapi.yaml against the app: schemathesis fuzzes every endpoint, signed and unsigned.

Unsigned (what schemathesis makes of the X-Twilio-Signature scheme: nothing, or random text),
each request must get 403 and leave Redis as it was. Signed (the same request, signed over the
form the app will read, as Twilio signs what it sends), the handlers' bodies run on hostile
forms: they must never answer 5xx, and every answer must be what the document says.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from xml.etree import ElementTree

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from twilio.request_validator import RequestValidator
from werkzeug.wrappers import Request

from bot import create_app
from bot.webhook import FormParams
from tests.conftest import ROOT, TOKEN
from tests.test_webhook import everything

CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": 100},
    "phases": {"stateful": {"enabled": False}},
})
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.yaml", config=CONFIG)
SENDERS = ["38000", "38123"]  # flows/demo.toml, flows/presidentielle-2027.toml
VOTERS = ["+33612980001", "+33612980002", "+33612980003"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, unsupported_method]


@SCHEMA.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy:
    """Aim some forms at the real flows, at voters a round asked, and at the carrier's STOP code."""
    if not isinstance(body, dict) or context.operation is None:
        return st.just(body)
    inbound = context.operation.path == "/sms/inbound"
    sender, voter = ("To", "From") if inbound else ("From", "To")
    picks = st.fixed_dictionaries({}, optional={sender: st.sampled_from(SENDERS), voter: st.sampled_from(VOTERS),
                                               **({} if inbound else {"ErrorCode": st.just("21610")})})
    return picks.map(lambda chosen: {**body, **chosen})


class SignEverything:
    """WSGI middleware signing each request over exactly the form the app will read, with our token."""

    def __init__(self, app: Callable, token: str = TOKEN) -> None:
        self.app, self.validator = app, RequestValidator(token)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        request = Request({**environ, "wsgi.input": io.BytesIO(body)})
        query = environ.get("QUERY_STRING", "")
        url = f"{request.scheme}://{request.host}{request.path}" + (f"?{query}" if query else "")
        environ["HTTP_X_TWILIO_SIGNATURE"] = self.validator.compute_signature(url, FormParams(request.form))
        return self.app(environ, start_response)


@pytest.fixture
def signed(config, clock, redis_client) -> Flask:
    """The app behind a signer."""
    app = create_app(config, clock=clock)
    app.wsgi_app = SignEverything(app.wsgi_app)  # type: ignore[method-assign]
    return app


def a_round_asked_the_voters(accord) -> None:
    """Start each example afresh: voters asked in both flows, and no MessageSid seen yet (a sid drawn
    again in a later example would be a replay to another sender: test_webhook_fuzz.py tests that)."""
    accord.store.redis.flushall()
    for flow in accord.flows.values():
        for phone in VOTERS[:2]:
            accord.store.claim(flow, phone, window_open=True)


@SCHEMA.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_unsigned_requests_get_403_and_change_nothing(case, app, redis_client):
    """Unsigned or badly signed, any form to a webhook is refused before anything is read or stored."""
    a_round_asked_the_voters(app.extensions["accord"])
    before = everything(redis_client)
    response = case.call(app=app)
    case.validate_response(response, checks=CHECKS)
    if case.method == "POST" and case.operation.path.startswith("/sms/"):
        assert response.status_code == 403
    assert everything(redis_client) == before


@SCHEMA.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_signed_requests_never_get_a_server_error(case, signed):
    """Signed, any form reaches the handlers: never a 5xx, always the documented answer, a sound ledger."""
    accord = signed.extensions["accord"]
    a_round_asked_the_voters(accord)
    before = everything(accord.store.redis)
    response = case.call(app=signed)
    case.validate_response(response, checks=CHECKS)
    if case.method == "POST" and case.operation.path.startswith("/sms/"):
        assert response.status_code != 403
    if response.status_code == 400:  # a form without a valid sender or sid is refused, and changes nothing
        assert everything(accord.store.redis) == before
    if response.headers.get("content-type", [""])[0].startswith("application/xml"):
        ElementTree.fromstring(response.content)
    for flow_id in accord.flows:
        assert accord.store.verify_ledger(flow_id) is None


def test_the_document_describes_every_webhook_route_and_method(app):
    served = {(rule.rule, method) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("sms.")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method.upper()) for path, operations in SCHEMA.raw_schema["paths"].items()
                  for method in operations}
    assert documented == served
