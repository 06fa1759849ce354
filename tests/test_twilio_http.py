"""The HTTP layer under the Twilio client: what it sends, how it fails, its pool, proxies and TLS.

The official client runs on top (bot/gateways/twilio_http.py) against the local Twilio server; a
failure of the transport must come out of the gateway as a SendError, never as urllib3's own error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Self

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio_server import TwilioServer, _Handler

from bot.gateways import SendError
from bot.gateways.twilio import TwilioGateway
from bot.gateways.twilio_http import TransportError

OUR_NUMBER = "+33612345678"
SHORT_CODE = "38123"
VOTER = "+33698765432"
SINCE = datetime.now(UTC) - timedelta(hours=1)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _HeaderNotingHandler(_Handler):
    def _serve(self, method: str) -> None:
        self.server.twilio.headers.append(dict(self.headers.items()))  # type: ignore[attr-defined]
        super()._serve(method)


class HeaderNotingTwilio(TwilioServer):
    """The local Twilio, noting the headers of each request it gets, in order."""

    handler = _HeaderNotingHandler

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.headers: list[dict[str, str]] = []


@pytest.fixture(scope="module")
def server() -> Iterator[HeaderNotingTwilio]:
    with HeaderNotingTwilio() as twilio:
        yield twilio


@pytest.fixture(autouse=True)
def fresh(server: HeaderNotingTwilio) -> None:
    server.reset()
    server.headers.clear()


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment with no proxy set, for a test to set its own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def gateway_to(url: str, server: TwilioServer, *, timeout: float = 5) -> TwilioGateway:
    return TwilioGateway(server.account_sid, server.auth_token, api_url=url, timeout=timeout)


def every_call(gateway: TwilioGateway) -> list[Callable[[], object]]:
    """A send and both listings: each goes through the same HTTP layer."""
    return [lambda: gateway.send(VOTER, "Bonjour", sender=SHORT_CODE),
            lambda: gateway.inbound_since(OUR_NUMBER, SINCE),
            lambda: gateway.sent_to(VOTER, SHORT_CODE, SINCE)]


def transport_failure(call: Callable[[], object]) -> BaseException:
    """Return what urllib3 raised under the SendError `call` raised, a retryable one with no status."""
    with pytest.raises(SendError) as caught:
        call()
    error = caught.value
    assert (error.status, error.code, error.retryable) == (None, None, True)
    assert isinstance(error.__cause__, TransportError)
    assert error.__cause__.__cause__ is not None
    return error.__cause__.__cause__


def test_a_request_carries_what_twilios_own_http_client_sends(server: HeaderNotingTwilio, environ) -> None:
    ours = gateway_to(server.base_url, server)
    theirs = Client(server.account_sid, server.auth_token, http_client=TwilioHttpClient(timeout=5))
    theirs.api.base_url, theirs.edge, theirs.region = server.base_url, None, None
    ours.send(VOTER, "Bonjour, ça va ? 100% & +", sender=SHORT_CODE, validity_period=3600,
              status_callback="https://accord.example/sms/status?x=1")
    theirs.messages.create(to=VOTER, body="Bonjour, ça va ? 100% & +", from_=SHORT_CODE, validity_period=3600,
                           status_callback="https://accord.example/sms/status?x=1")
    ours.sent_to(VOTER, SHORT_CODE, SINCE, at_most=7)
    theirs.messages.list(to=VOTER, from_=SHORT_CODE, limit=7, page_size=7)

    post, their_post, listing, their_listing = server.requests
    assert {k: v for k, v in post.items() if k != "status"} == {k: v for k, v in their_post.items() if k != "status"}
    assert listing == their_listing and listing["query"] == {"To": VOTER, "From": SHORT_CODE, "PageSize": "7"}
    headers, their_headers, list_headers, their_list_headers = server.headers
    assert headers == their_headers and list_headers == their_list_headers
    assert headers["Authorization"].startswith("Basic ") and headers["Connection"] == "keep-alive"


def test_it_logs_what_twilios_client_logs_and_never_the_credentials(
        server: HeaderNotingTwilio, caplog: pytest.LogCaptureFixture) -> None:
    gateway = gateway_to(server.base_url, server)
    with caplog.at_level(logging.INFO, logger="twilio.http_client"):
        gateway.send(VOTER, "Bonjour", sender=SHORT_CODE)
    assert f"POST Request: {server.base_url}{server.messages_path}" in caplog.text
    assert "Response Status Code: 201" in caplog.text
    assert "Authorization" not in caplog.text and server.auth_token not in caplog.text


def test_an_answer_later_than_the_timeout_is_a_send_error_for_sends_and_listings(server: HeaderNotingTwilio) -> None:
    impatient = gateway_to(server.base_url, server, timeout=0.3)
    server.delay(1)
    for call in every_call(impatient):
        assert isinstance(transport_failure(call), urllib3.exceptions.ReadTimeoutError)
    assert len(server.requests) == 3  # each tried once: retrying is the worker's to decide


def test_a_refused_connection_is_a_send_error_for_sends_and_listings(server: HeaderNotingTwilio) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # nobody listens once it is closed
    for call in every_call(gateway_to(f"http://127.0.0.1:{port}", server, timeout=1)):
        assert isinstance(transport_failure(call), urllib3.exceptions.NewConnectionError)


@pytest.fixture
def hangs_up() -> Iterator[str]:
    """A server that reads each request, then closes the connection without answering; yield its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        for _ in range(10):  # no test here sends more
            try:
                connection, _ = listener.accept()
            except OSError:  # closed at the end of the test, or nobody came
                return
            with connection:
                connection.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    thread.join(timeout=10)


def test_a_connection_closed_before_the_answer_is_a_send_error(server: HeaderNotingTwilio, hangs_up: str) -> None:
    for call in every_call(gateway_to(hangs_up, server)):
        assert isinstance(transport_failure(call), urllib3.exceptions.ProtocolError)


@pytest.fixture
def redirects(server: HeaderNotingTwilio) -> Iterator[str]:
    """A server answering every request with a 307 to the same path on the local Twilio; yield its URL."""

    class Redirect(BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(307)
            self.send_header("Location", server.base_url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: object) -> None:
            """Stay quiet."""

    with ThreadingHTTPServer(("127.0.0.1", 0), Redirect) as httpd:  # HTTP/1.0: one request a connection
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_a_redirect_is_not_followed(server: HeaderNotingTwilio, redirects: str) -> None:
    for call in every_call(gateway_to(redirects, server)):
        with pytest.raises(SendError) as caught:
            call()
        assert caught.value.status == 307
    assert server.requests == []


def test_threads_sharing_a_gateway_each_get_the_sid_of_their_own_text_over_kept_alive_connections(
        server: HeaderNotingTwilio) -> None:
    gateway = gateway_to(server.base_url, server)  # a pool of SEND_CONCURRENCY (32), as a worker's
    server.delay(0.02)  # the answers overlap
    threads, rounds = 32, 3
    got: dict[str, str] = {}

    kept: dict[str, str] = {}  # the response each thread finds kept after its own send

    def send(phones: list[str], start: threading.Barrier) -> None:
        start.wait()
        for phone in phones:
            got[phone] = gateway.send(phone, "Bonjour", sender=SHORT_CODE)
            kept[phone] = json.loads(gateway.client.http_client._test_only_last_response.text)["sid"]

    start = threading.Barrier(threads)
    workers = [threading.Thread(target=send, args=([f"+3367{t:03d}{r:04d}" for r in range(rounds)], start))
               for t in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: a response kept in one shared place would get swapped
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert len(got) == threads * rounds
    assert got == {message["to"]: message["sid"] for message in server.messages} == kept
    pool = gateway.client.http_client.pool_for(server.base_url).connection_from_url(server.base_url)
    assert pool.num_requests == threads * rounds and pool.num_connections <= threads  # kept alive, reused


def test_the_proxies_of_the_environment_are_read_once_when_the_gateway_is_built(environ) -> None:
    environ.setenv("HTTPS_PROXY", "http://squid.example:3128")
    environ.setenv("HTTP_PROXY", "http://user:p%40ss@proxy.example:8080")
    environ.setenv("NO_PROXY", "localhost, .internal.example,198.51.100.0/24")
    http = TwilioGateway("AC" + "0" * 32, "0" * 32).client.http_client
    environ.delenv("HTTPS_PROXY")  # too late: read once
    api = http.pool_for("https://api.twilio.com/2010-04-01/Accounts/AC/Messages.json")
    assert isinstance(api, urllib3.ProxyManager) and api.proxy.url == "http://squid.example:3128"
    plain = http.pool_for("http://example.org/x")
    assert isinstance(plain, urllib3.ProxyManager) and plain.proxy.url == "http://proxy.example:8080"
    assert plain.proxy_headers == urllib3.util.make_headers(proxy_basic_auth="user:p@ss")
    for direct in ("http://localhost:8000/", "https://api.internal.example/x", "http://198.51.100.7/"):
        assert http.pool_for(direct) is http.direct, direct
    environ.delenv("HTTP_PROXY")
    environ.setenv("ALL_PROXY", "proxy.example:8081")  # no scheme: http, as requests reads it
    everything = TwilioGateway("AC" + "0" * 32, "0" * 32).client.http_client
    assert everything.pool_for("https://api.twilio.com/x").proxy.url == "http://proxy.example:8081"


@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1", "localhost,127.0.0.0/8"])
def test_a_send_goes_through_the_proxy_unless_no_proxy_names_the_host(
        server: HeaderNotingTwilio, environ, no_proxy: str | None) -> None:
    # The local Twilio stands in for a forwarding proxy too: it serves the absolute URL a proxy gets.
    with TwilioServer(server.account_sid, server.auth_token) as proxy:
        environ.setenv("HTTP_PROXY", proxy.base_url)
        if no_proxy:
            environ.setenv("NO_PROXY", no_proxy)
        sid = gateway_to(server.base_url, server).send(VOTER, "Bonjour", sender=SHORT_CODE)
        went_to, passed_by = (server, proxy) if no_proxy else (proxy, server)
        assert [message["sid"] for message in went_to.messages] == [sid] and passed_by.messages == []


def self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a certificate for 127.0.0.1 signed by its own key; return the certificate's and the key's paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local twilio")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "twilio.pem", directory / "twilio.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsTwilio(TwilioServer):
    """The local Twilio over TLS, with a certificate of its own that no public authority signed."""

    def __init__(self, certificate: Path, key: Path) -> None:
        super().__init__()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(certificate, key)

    def start(self) -> Self:
        super().start()
        assert self._httpd is not None
        self._httpd.socket = self._context.wrap_socket(self._httpd.socket, server_side=True)
        return self

    @property
    def base_url(self) -> str:
        return super().base_url.replace("http://", "https://", 1)


def test_tls_is_verified_a_certificate_nobody_trusts_is_refused_one_trusted_by_the_ca_bundle_is_not(
        tmp_path: Path, environ) -> None:
    certificate, key = self_signed(tmp_path)
    with TlsTwilio(certificate, key) as secure:
        cause = transport_failure(lambda: gateway_to(secure.base_url, secure).send(VOTER, "Bonjour", sender=SHORT_CODE))
        assert isinstance(cause, urllib3.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(cause)
        assert secure.messages == []
        environ.setenv("REQUESTS_CA_BUNDLE", str(certificate))  # as requests read it: a proxy's own CA, say
        sid = gateway_to(secure.base_url, secure).send(VOTER, "Bonjour", sender=SHORT_CODE)
        assert [message["sid"] for message in secure.messages] == [sid]
