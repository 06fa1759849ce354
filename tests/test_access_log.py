"""The web server's access log, written as the Procfile says: no number, no text, no secret, no link.

OVHcloud calls its callbacks with GET query parameters (the voter's number and text), the secret
that proves them in the path; a voter's one-time link is a path too. gunicorn writes each
request's line whatever the app answers, and nothing erases a log.
"""

from __future__ import annotations

import http.client
import secrets
from pathlib import Path

from tests.test_storm import procfile_web, storm_env  # noqa: F401 (a fixture)

VOTER = "+33612980001"


def test_the_access_log_keeps_no_callback_secret_no_number_no_text_and_no_link(storm_env, tmp_path: Path):  # noqa: F811
    secret, token, log = secrets.token_urlsafe(32), secrets.token_urlsafe(32), tmp_path / "gunicorn.log"
    paths = [f"/sms/ovh/{secret}/inbound/38000?id=4711&sender=%2B33612980001&message=oui+je+vote+pour+vous",
             f"/sms/ovh/{secret}/status?id=4712&receiver=%2B33612980001&dlr=1",
             f"/v/{token}"]
    with procfile_web({**storm_env, "WEB_CONCURRENCY": "1"}, log) as (port, _):
        for path in paths:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path, headers={"Referer": f"https://accord.test/v/{token}?sender={VOTER}"})
            connection.getresponse().read()
            connection.close()
    logged = log.read_text()
    assert logged.count('"GET /sms/ovh/') == 2 and logged.count('"GET /v/') == 1  # the requests are logged
    for held in (secret, token, "33612980001", "0612980001", "oui+je+vote", "oui je vote"):
        assert held not in logged
