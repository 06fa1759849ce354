"""Several providers in one deployment: each flow sends, is witnessed and is answered through the
provider it names (else the default: Twilio when configured, else OVHcloud, else the outbox)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot import build, create_app
from bot.config import Config
from bot.flows import FlowError
from bot.gateways.outbox import OutboxGateway
from bot.gateways.ovh import OvhGateway
from bot.gateways.twilio import TwilioGateway
from bot.sending import ask
from tests.conftest import OVH_SECRET, SMS, OvhProvider, answers
from tests.flowfiles import NOTICE, TEXTS
from tests.ovh_server import OvhServer
from tests.twilio_server import TwilioServer

VOTER = "+33612980001"
PUBLIC = "https://sms.example.org"
FLOW = """\
id = "{id}"
controller_id = "liste-essai"
controller = "Liste Essai"
purpose = "recevoir les SMS de la campagne Essai ({id})"
source = "le fichier des sympathisants"
notice_url = "https://example.org/donnees"
poll_date = 2030-06-09
sender = "{sender}"
{gateway}
""" + NOTICE + TEXTS + """\
content = ["{{controller}} : premier message ({id}). STOP pour ne plus recevoir"]
"""


def flows(tmp_path: Path, **senders: tuple[str, str]) -> Path:
    """Write one flow per id: (sender, gateway named or "")."""
    directory = tmp_path / "flows"
    directory.mkdir(exist_ok=True)
    for flow_id, (sender, gateway) in senders.items():
        (directory / f"{flow_id}.toml").write_text(FLOW.format(
            id=flow_id, sender=sender, gateway=f'gateway = "{gateway}"' if gateway else ""), encoding="utf-8")
    return directory


@pytest.fixture
def servers(twilio: TwilioServer, ovh_server: OvhServer) -> tuple[TwilioServer, OvhServer]:
    twilio.reset()
    ovh_server.reset()
    return twilio, ovh_server


def both(config: Config, servers: tuple[TwilioServer, OvhServer], directory: Path) -> Config:
    """The settings of a deployment with Twilio and OVHcloud both configured, as from_env reads them."""
    twilio, ovh = servers
    return OvhProvider(ovh).configure(dataclasses.replace(
        config, flows_dir=directory, twilio_account_sid=twilio.account_sid, auth_token=twilio.auth_token,
        twilio_api_url=twilio.base_url, public_url=PUBLIC))


def test_each_flow_sends_through_the_provider_it_names(config, clock, redis_client, servers, tmp_path):
    twilio, ovh = servers
    directory = flows(tmp_path, named_twilio=("38001", "twilio"), named_ovh=("38002", "ovh"), default=("38003", ""))
    app = create_app(both(config, servers, directory), clock=clock)
    accord = app.extensions["accord"]
    assert isinstance(accord.gateway, TwilioGateway)  # Twilio configured: the default
    for flow_id in ("named_twilio", "named_ovh", "default"):
        assert ask(accord, accord.flows[flow_id], VOTER) == "sent"
    assert [(m["from"], m["params"]["StatusCallback"]) for m in twilio.messages] == [
        ("38001", f"{PUBLIC}/sms/status"), ("38003", f"{PUBLIC}/sms/status")]
    assert [(job["body"]["tag"], job["body"]["callBack"]) for job in ovh.jobs] == [
        ("38002", f"{PUBLIC}/sms/ovh/{OVH_SECRET}/status")]

    # Each provider's callback reaches the flows of the sender the text arrived on.
    client = app.test_client()
    sms = SMS(client, token=twilio.auth_token)
    sms.URL = PUBLIC
    ovh_flow, twilio_flow = accord.flows["named_ovh"], accord.flows["named_twilio"]
    assert answers(sms.send(VOTER, "OUI", to="38001")) == [twilio_flow.texts.confirmation,
                                                            twilio_flow.texts.content[0]]
    response = client.get(f"/sms/ovh/{OVH_SECRET}/inbound/38002",
                          query_string={"id": ovh.add_inbound(VOTER, "OUI"), "sender": VOTER, "message": "OUI"})
    assert response.status_code == 204
    assert [job["body"]["message"] for job in ovh.jobs[1:]] == [ovh_flow.texts.confirmation,
                                                                ovh_flow.texts.content[0]]
    assert accord.store.state(ovh_flow, VOTER) == accord.store.state(twilio_flow, VOTER) == "consented"
    assert len(twilio.messages) == 2  # the TwiML answer is Twilio's: nothing more went through its API


def test_without_twilio_the_default_is_ovh_and_without_either_the_outbox(config, redis_client, servers, tmp_path):
    _, ovh = servers
    directory = flows(tmp_path, default=("38003", ""))
    only_ovh = OvhProvider(ovh).configure(dataclasses.replace(config, flows_dir=directory))
    assert isinstance(build(only_ovh).gateway, OvhGateway)
    assert isinstance(build(dataclasses.replace(config, flows_dir=directory)).gateway, OutboxGateway)


@pytest.mark.parametrize("named", ["ovh", "twilio"])
def test_a_flow_naming_a_provider_not_configured_stops_the_start(config, redis_client, tmp_path, named: str):
    directory = flows(tmp_path, lost=("38001", named))
    with pytest.raises(FlowError) as caught:
        build(dataclasses.replace(config, flows_dir=directory))
    assert caught.value.key == "gateway" and caught.value.path.endswith("lost.toml")
    assert f"{named!r} is not configured" in caught.value.problem
