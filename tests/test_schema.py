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

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
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
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


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
    app = create_app(config, clock=clock)
    app.wsgi_app = SignEverything(app.wsgi_app)  # type: ignore[method-assign]
    return app


@SCHEMA.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_unsigned_requests_get_403_and_change_nothing(case, app, redis_client):
    before = everything(redis_client)
    response = case.call(app=app)
    case.validate_response(response, checks=CHECKS)
    if case.method == "POST":
        assert response.status_code == 403
    assert everything(redis_client) == before


@SCHEMA.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_signed_requests_never_get_a_server_error(case, signed):
    response = case.call(app=signed)
    case.validate_response(response, checks=CHECKS)
    if case.method == "POST":
        assert response.status_code != 403
