"""The HTTP layer under the official Twilio client: one urllib3 pool of kept-alive connections a gateway.

twilio-python sends through `requests` (its TwilioHttpClient), whose Session prepares every request
anew: cookie jars, hooks, and the environment's proxies, netrc and CA bundle read again each time,
most of the CPU a text costs a worker. This client sends what that one sends (its headers, basic
auth, query and form encoding, timeout, logging), through urllib3 directly, with the environment
read once. Everything above it (forms, auth, errors, MessageInstance) stays the official client's.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from base64 import b64encode
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass_environment

import certifi
import urllib3
from twilio.http import HttpClient
from twilio.http.response import Response

_logger = logging.getLogger("twilio.http_client")  # the logger twilio's own client writes to
_JSON = frozenset({"application/json", "application/scim+json"})
# What a requests Session adds to every request, spelled as it spells them: the encodings urllib3
# can decode, and keep-alive.
_DEFAULT_HEADERS = {
    "Accept-Encoding": ", ".join(urllib3.util.make_headers(accept_encoding=True)["accept-encoding"].split(",")),
    "Connection": "keep-alive",
}


class TransportError(Exception):
    """A request that got no answer (refused, timed out, cut off): Twilio may or may not have acted on it."""


class PooledHttpClient(HttpClient):
    """Send the Twilio client's requests through one urllib3 pool, shared by a worker's sending threads.

    urllib3 never retries (the worker decides) and never follows a redirect. HTTP_PROXY, HTTPS_PROXY,
    ALL_PROXY and NO_PROXY are read once, here, as requests would read them for each request; so are
    REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE (else certifi's bundle, as requests): TLS is always verified.
    Each thread keeps its own last response (`_test_only_last_response`); `_test_only_last_request`
    is not kept.
    """

    def __init__(self, *, timeout: float, maxsize: int) -> None:
        self._kept = threading.local()
        super().__init__(_logger, False, timeout)
        assert self.timeout is not None
        self._timeout = urllib3.Timeout(connect=self.timeout, read=self.timeout)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
        # One pool per host of at most `maxsize` idle connections: past it, a connection would be
        # closed after one use ("Connection pool is full, discarding connection"). No retries:
        # a POST retried blindly can send a text twice; the worker decides.
        self._options: dict[str, Any] = {"maxsize": maxsize, "block": False, "retries": False,
                                         "timeout": self._timeout, "cert_reqs": "CERT_REQUIRED",
                                         "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs": bundle}
        self.direct = urllib3.PoolManager(**self._options)
        self.proxies = {scheme: url for scheme, url in getproxies().items() if url}
        self._routes: dict[str, urllib3.PoolManager] = {}  # "scheme://host:port" -> direct or a proxy's
        self._via: dict[str, urllib3.ProxyManager] = {}  # proxy URL -> its manager
        self._lock = threading.Lock()

    @property  # type: ignore[override]
    def _test_only_last_response(self) -> Response | None:
        return getattr(self._kept, "response", None)

    @_test_only_last_response.setter
    def _test_only_last_response(self, response: Response | None) -> None:
        self._kept.response = response

    def request(
        self, method: str, url: str, params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None, headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None, timeout: float | None = None, allow_redirects: bool = False,
    ) -> Response:
        """Send one request as twilio's TwilioHttpClient does; TransportError if no answer came."""
        if timeout is None:
            limits = self._timeout
        elif timeout <= 0:
            raise ValueError(timeout)
        else:
            limits = urllib3.Timeout(connect=timeout, read=timeout)
        method = method.upper()
        headers = {**_DEFAULT_HEADERS, **(headers or {})}
        if self.logger.isEnabledFor(logging.INFO):  # its lines are built before the level is checked
            self.log_request({"method": method, "url": url, "params": params, "headers": headers})
        self._test_only_last_response = None
        if params:
            url += ("&" if "?" in url else "?") + _encoded(params)
        if headers.get("Content-Type") in _JSON:
            body = None if data is None else json.dumps(data, allow_nan=False).encode()
        else:
            body = _encoded(data).encode() if data else None
        if auth is not None:
            headers["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode("latin-1")).decode()
        try:
            # retries=False (the pools') already hands a redirect back as it came; redirect=False says so here.
            answer = self.pool_for(url).urlopen(method, url, body=body, headers=headers, timeout=limits,
                                                redirect=False, preload_content=True)
        except urllib3.exceptions.LocationValueError:
            raise  # a malformed URL is a setting's mistake, not a request that went astray
        except urllib3.exceptions.HTTPError as exc:
            raise TransportError(str(exc)) from exc
        if self.logger.isEnabledFor(logging.INFO):
            self.log_response(answer.status, answer)  # type: ignore[arg-type]  # it reads .headers alone
        response = Response(answer.status, _text(answer), answer.headers)
        self._test_only_last_response = response
        return response

    def pool_for(self, url: str) -> urllib3.PoolManager:
        """Return the pool a request to `url` goes through: direct, or its scheme's proxy."""
        scheme, _, rest = url.partition("://")
        origin = scheme + "://" + rest.partition("/")[0].partition("?")[0]
        pool = self._routes.get(origin)
        if pool is None:
            with self._lock:
                pool = self._routes[origin] = self._route(scheme.lower(), urlsplit(origin))
        return pool

    def _route(self, scheme: str, origin: Any) -> urllib3.PoolManager:
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        if not proxy or _bypassed(origin.netloc.rpartition("@")[2], origin.hostname or "", self.proxies):
            return self.direct
        if proxy not in self._via:
            where = urllib3.util.parse_url(proxy if "://" in proxy else "http://" + proxy)  # "host:port": http
            login = {}
            if where.auth:  # sent as a header, and kept out of the URL that error messages show
                user, _, password = (unquote(part) for part in where.auth.partition(":"))
                login["proxy_headers"] = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}")
            self._via[proxy] = urllib3.ProxyManager(where._replace(auth=None).url, **login, **self._options)
        return self._via[proxy]


def _bypassed(netloc: str, host: str, proxies: Mapping[str, str]) -> bool:
    """Tell whether NO_PROXY names this host (a name, a domain, an address or, as requests reads it, a network)."""
    if proxy_bypass_environment(netloc, proxies):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in proxies.get("no", "").split(","):
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:  # a name, not a network
            continue
    return False


def _encoded(fields: Mapping[str, object]) -> str:
    """Form-encode as requests does: a list gives one pair per item, None values are left out."""
    pairs = [(key, value) for key, values in fields.items()
             for value in (values if isinstance(values, list | tuple) else (values,)) if value is not None]
    return urlencode(pairs)


def _text(answer: urllib3.BaseHTTPResponse) -> str:
    """Decode the body by its declared charset, UTF-8 otherwise (JSON's, and what Twilio declares)."""
    charset = answer.headers.get("Content-Type", "").partition("charset=")[2].split(";")[0].strip(" \"'")
    try:
        return answer.data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return answer.data.decode("utf-8", errors="replace")
