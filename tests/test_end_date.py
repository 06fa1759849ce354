"""The window's limits on every real path: nothing after a flow's end date, and each voter's own clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rq.job import Job

from bot import Accord, sending
from bot.sending import queue_for
from bot.web import dashboard
from bot.windows import Window, closes_at, sending_window
from tests.conftest import PARIS, SMS, Clock, answers
from tests.test_rounds import ORIGIN, run, scheduled

CAMPAIGN = "presidentielle-2027"  # polls on 2027-04-11 and 2027-04-25, end_date = 2027-04-25
ENDED = "after the flow's end date, 2027-04-25"
DAY_AFTER = dt.datetime(2027, 4, 26, 10, 0, tzinfo=PARIS)  # a Monday, well inside the usual hours
VOTER = "+33612980001"
GUADELOUPE, NOUMEA, REUNION = (ZoneInfo(name) for name in ("America/Guadeloupe", "Pacific/Noumea", "Indian/Reunion"))
END = dt.date(2027, 5, 10)  # a Monday
AFTER = "after sending hours"


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


# (now, voter's region, reason or "" if open, opens_at) for a Paris flow ending on END, without a poll
CASES = {
    "the_end_date_is_the_last_sending_day": (paris(2027, 5, 10, 19, 59), "", "", paris(2027, 5, 10, 19, 59)),
    "its_evening_has_no_window_left": (paris(2027, 5, 10, 20, 0), "", AFTER, None),
    "closed_from_midnight_after_it": (paris(2027, 5, 11, 0, 0), "", "after the flow's end date, 2027-05-10", None),
    "and_ever_after": (paris(2027, 9, 1, 10, 0), "M", "after the flow's end date, 2027-05-10", None),
    "a_closed_window_before_it_still_opens": (paris(2027, 5, 7, 21, 0), "", AFTER, paris(2027, 5, 10, 8, 30)),
    # The end date is the flow's: midnight in Paris is 18:00 in Guadeloupe and 09:00 in Nouméa.
    "guadeloupe_before_paris_midnight": (dt.datetime(2027, 5, 10, 17, 59, tzinfo=GUADELOUPE), "G", "",
                                         dt.datetime(2027, 5, 10, 17, 59, tzinfo=GUADELOUPE)),
    "guadeloupe_after_paris_midnight": (dt.datetime(2027, 5, 10, 18, 0, tzinfo=GUADELOUPE), "G",
                                        "after the flow's end date, 2027-05-10", None),
    "noumea_just_before_paris_midnight": (dt.datetime(2027, 5, 11, 8, 59, tzinfo=NOUMEA), "N", "",
                                          dt.datetime(2027, 5, 11, 8, 59, tzinfo=NOUMEA)),
    "noumea_morning_after": (dt.datetime(2027, 5, 11, 9, 0, tzinfo=NOUMEA), "N",
                             "after the flow's end date, 2027-05-10", None),
}


@pytest.mark.parametrize(("now", "region", "reason", "opens_at"), CASES.values(), ids=CASES.keys())
def test_the_window_shuts_for_good_after_the_end_date(now, region, reason, opens_at) -> None:
    window = sending_window(now, tz=PARIS, poll_date=None, region=region, end_date=END)
    assert window == Window(not reason, reason, opens_at)


def test_a_voter_west_of_the_flow_loses_the_evening_of_the_end_date() -> None:
    afternoon = dt.datetime(2027, 5, 10, 17, 0, tzinfo=GUADELOUPE)
    assert closes_at(afternoon, tz=PARIS, poll_date=None, region="G", end_date=END) == afternoon.replace(hour=18)


def test_a_flow_without_end_date_sends_as_before(accord: Accord) -> None:
    demo = accord.flows["demo"]
    tuesday = paris(2031, 6, 3, 10).timestamp()
    assert demo.end_date is None and demo.is_open(tuesday) and not demo.has_ended(tuesday)


def test_the_flows_window_names_its_end_date_and_no_opening(accord: Accord) -> None:
    flow = accord.flows[CAMPAIGN]
    assert flow.window(DAY_AFTER.timestamp()) == Window(False, ENDED, None)
    assert not flow.is_open(DAY_AFTER.timestamp()) and not flow.is_open(DAY_AFTER.timestamp(), "R")
    view = dashboard.window_view(flow, DAY_AFTER.timestamp())
    assert (view.open, view.reason, view.opens_at) == (False, ENDED, None)
    assert flow.is_open(paris(2027, 4, 24, 10).timestamp()) is False  # silence: shut, as before


# The workers' path: batches against the local Twilio-shaped server.

def test_a_batch_after_the_end_date_sends_nothing(twilio_accord: Accord, twilio, clock: Clock) -> None:
    clock.set(DAY_AFTER)
    counts = sending.send_requests(CAMPAIGN, f"{VOTER},+33612980002/97110")
    assert counts == {"no window left": 2}
    assert twilio.messages == [] and scheduled(twilio_accord) == []
    assert twilio_accord.store.state(twilio_accord.flows[CAMPAIGN], VOTER) == "new"


def test_requests_held_by_the_last_silence_never_go_after_the_end_date(twilio_accord: Accord, twilio,
                                                                       clock: Clock) -> None:
    clock.set(paris(2027, 4, 24, 10))  # the eve of the second round: silence until the end date's evening
    assert sending.send_requests(CAMPAIGN, VOTER) == {"no window left": 1}
    assert scheduled(twilio_accord) == []  # not held for Monday 26, the day after the end
    assert twilio.messages == []


def test_content_after_the_end_date_is_not_sent(twilio_accord: Accord, twilio, clock: Clock) -> None:
    flow = twilio_accord.flows[CAMPAIGN]
    clock.set(paris(2027, 4, 20, 21))  # after hours: YES is confirmed, content waits
    twilio_accord.store.claim(flow, VOTER, window_open=True)
    twilio_accord.store.step([flow], VOTER, "yes", inbound=True, window_open=False)
    clock.set(DAY_AFTER)
    assert sending.send_content(CAMPAIGN, 2, VOTER) == {"no window left": 1}
    assert twilio.messages == []


# The webhook's path: service texts still answer, campaign texts do not.

def test_after_the_end_date_yes_is_confirmed_without_content(accord: Accord, sms: SMS, clock: Clock) -> None:
    flow = accord.flows[CAMPAIGN]
    clock.set(paris(2027, 4, 20, 10))
    accord.store.claim(flow, VOTER, window_open=True)
    clock.set(DAY_AFTER)
    assert answers(sms.send(VOTER, "oui", to=flow.sender)) == [flow.texts.confirmation]
    assert answers(sms.send(VOTER, "aide", to=flow.sender)) == [flow.texts.help]
    assert answers(sms.send(VOTER, "stop", to=flow.sender)) == [flow.texts.stopped]


def test_after_the_end_date_start_asks_nothing(accord: Accord, sms: SMS, clock: Clock) -> None:
    flow = accord.flows[CAMPAIGN]
    clock.set(paris(2027, 4, 20, 10))
    accord.store.claim(flow, VOTER, window_open=True)
    assert answers(sms.send(VOTER, "stop", to=flow.sender)) == [flow.texts.stopped]
    clock.set(DAY_AFTER)
    assert answers(sms.send(VOTER, "start", to=flow.sender)) == []


# The operator's commands refuse up front.

def test_round_start_after_the_end_date_is_refused_naming_it(twilio_accord: Accord, clock: Clock, tmp_path: Path,
                                                              redis_client) -> None:
    clock.set(DAY_AFTER)
    path = tmp_path / "contacts.csv"
    path.write_text(f"phone\n{VOTER}\n")
    result = run(twilio_accord, "round", "start", CAMPAIGN, str(path), *ORIGIN)
    assert result.exit_code == 1 and "2027-04-25" in result.output
    assert list(redis_client.scan_iter()) == []


def test_content_send_after_the_end_date_is_refused_naming_it(twilio_accord: Accord, clock: Clock) -> None:
    flow = twilio_accord.flows[CAMPAIGN]
    clock.set(paris(2027, 4, 20, 21))
    twilio_accord.store.claim(flow, VOTER, window_open=True)
    twilio_accord.store.step([flow], VOTER, "yes", inbound=True, window_open=False)
    clock.set(paris(2027, 4, 25, 23, 59))  # the end date itself: still the campaign's
    assert run(twilio_accord, "content", "send", CAMPAIGN, "--message", "2").exit_code == 0
    queue_for(twilio_accord).empty()
    clock.set(DAY_AFTER)
    result = run(twilio_accord, "content", "send", CAMPAIGN, "--message", "2")
    assert result.exit_code == 1 and "2027-04-25" in result.output
    assert queue_for(twilio_accord).count == 0


# One window per voter, on the workers' path: the voter's own clock and holidays.

def deferred_to(accord: Accord, opens: dt.datetime, clock: Clock, before: dt.datetime) -> Job:
    """Return the one deferred batch, checking it is due when the window opens."""
    ((job_id, when),) = scheduled(accord)
    wait = opens.timestamp() - clock()
    assert abs((when.replace(tzinfo=dt.UTC) - before).total_seconds() - wait) < 5
    return Job.fetch(job_id, connection=accord.store.redis)


def test_a_guadeloupe_voter_is_asked_at_0830_guadeloupe_time(twilio_accord: Accord, twilio, clock: Clock) -> None:
    clock.set(paris(2027, 1, 12, 10))  # a Tuesday: 05:00 in Guadeloupe
    before = dt.datetime.now(dt.UTC)
    assert sending.send_requests(CAMPAIGN, f"{VOTER}/97110,+33612980002/75001") == {"sent": 1, "deferred": 1}
    assert [m["to"] for m in twilio.messages] == ["+33612980002"]
    opens = dt.datetime(2027, 1, 12, 8, 30, tzinfo=GUADELOUPE)
    job = deferred_to(twilio_accord, opens, clock, before)
    clock.set(opens)  # 13:30 in Paris
    assert sending.send_requests(*job.args) == {"sent": 1}
    assert twilio.messages[-1]["to"] == VOTER
    clock.set(dt.datetime(2027, 1, 12, 17, 0, tzinfo=GUADELOUPE))  # 22:00 in Paris, three hours left here
    assert sending.send_requests(CAMPAIGN, "+33612980003/97110") == {"sent": 1}
    assert twilio.messages[-1]["params"]["ValidityPeriod"] == str(3 * 3600)


def test_a_reunion_voter_waits_out_the_abolition_day_in_reunion_time(twilio_accord: Accord, twilio,
                                                                     clock: Clock) -> None:
    clock.set(paris(2027, 12, 20, 10))  # Monday 20 December: abolition of slavery in La Réunion
    before = dt.datetime.now(dt.UTC)
    assert sending.send_requests("demo", f"{VOTER}/97400,+33612980002") == {"deferred": 1, "sent": 1}
    assert [m["to"] for m in twilio.messages] == ["+33612980002"]
    # The demo flow opens at 07:00: in Réunion's time, that is 04:00 in Paris.
    deferred_to(twilio_accord, dt.datetime(2027, 12, 21, 7, 0, tzinfo=REUNION), clock, before)


def test_a_batch_may_carry_the_region_a_broadcast_read_beside_the_state(twilio_accord: Accord, twilio,
                                                                        clock: Clock) -> None:
    clock.set(paris(2027, 1, 12, 10))  # 05:00 in Guadeloupe
    counts = sending.send_requests(CAMPAIGN, f"{VOTER}/G,+33612980002/Z,+33612980003/M")
    assert counts == {"deferred": 1, "unknown region": 1, "sent": 1}  # Z: a damaged record, nothing goes
    assert [m["to"] for m in twilio.messages] == ["+33612980003"]
