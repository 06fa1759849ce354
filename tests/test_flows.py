"""A bad flow file gets a clear error naming the file, the key and the problem."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.flows import MAX_VALIDITY, MIN_VALIDITY, Flow, FlowError, load_flow, load_flows
from bot.sending import _opens_at, validity
from bot.windows import REGIONS
from tests.flowfiles import NOTICE

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
# A valid flow, modelled on flows/demo.toml; each case below breaks one thing in it.
TEMPLATE = """\
# A valid flow for the tests.
id = "essai"
controller_id = "liste-essai"
controller = "Liste Essai"
purpose = "recevoir les SMS de la campagne Essai"
source = "le courtier DataTest"
notice_url = "https://example.org/donnees"
language = "fr"
poll_date = 2030-06-09
timezone = "Europe/Paris"
sender = "38000"
sending_hours = "08:30-20:00"
sending_days = "mon-sat"

[texts]
consent_request = "{controller} : acceptez-vous de {purpose} ? Source : {source}. OUI ou STOP. Infos : {notice_url}"
confirmation = "Merci ! STOP pour annuler. {controller}"
declined = "C'est note. {controller}"
stopped = "Opposition enregistree. {controller}"
help = "{controller}. Numero obtenu via {source}. Vos droits : {notice_url}. STOP pour refuser."
clarification = "Repondez OUI ou STOP. {controller}"
content = ["{controller} : premier message. STOP pour ne plus recevoir"]

""" + NOTICE
TEXTS = "\n[texts]\n"


def write(directory: Path, old: str = "", new: str = "", *, name: str = "flow.toml",
          encoding: str = "utf-8") -> Path:
    """Write TEMPLATE with `old` replaced by `new` as a flow file."""
    assert old in TEMPLATE, f"{old!r} is not in the template"
    path = directory / name
    path.write_bytes(TEMPLATE.replace(old, new, 1).encode(encoding))
    return path


def refusal(path: Path) -> FlowError:
    """Load `path`, expect a FlowError naming it, and return the error."""
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value


def line_of(key: str) -> str:
    return next(line for line in TEMPLATE.splitlines(keepends=True) if line.startswith(f"{key} = "))


def test_the_template_is_a_valid_flow(tmp_path: Path) -> None:
    assert load_flow(write(tmp_path)).id == "essai"


@pytest.mark.parametrize(("key", "problem"), [
    ("id", "missing"), ("controller", "missing"), ("purpose", "missing"), ("source", "missing"),
    ("notice_url", "missing"), ("poll_date", "missing"), ("sender", "missing"), ("controller_id", "missing"),
])
def test_a_missing_required_key_is_named(tmp_path: Path, key: str, problem: str) -> None:
    error = refusal(write(tmp_path, line_of(key), ""))
    assert error.key == key
    assert problem in str(error)


# (old, new, key, a fragment of the message)
BROKEN = {
    "typo in a top-level key": ("controller = ", "controler = ", "controler", "unknown key"),
    "unknown key in texts": (TEXTS, TEXTS + 'remerciement = "Merci"\n', "texts.remerciement", "unknown key"),
    "no texts table": (TEMPLATE[TEMPLATE.index(TEXTS):TEMPLATE.index("[notice]")], "\n", "texts",
                       "missing [texts] table"),
    "a text left out": (line_of("stopped"), "", "texts.stopped", "missing"),
    "unknown placeholder": ("Merci ! ", "Merci {candidat} ! ", "texts.confirmation", "{candidat}"),
    "malformed placeholder": ("note. {controller}", "note. {controller", "texts.declined", "malformed placeholder"),
    "content without STOP": ("STOP pour ne plus recevoir", "Bonne journee", "texts.content[0]", "STOP"),
    "content without controller": ('["{controller} : premier', '["Premier', "texts.content[0]", "{controller}"),
    "content empty": (line_of("content"), "content = []\n", "texts.content", "one or more"),
    "poll_date as text": ("2030-06-09", '"11/04/2027"', "poll_date", "TOML date like 2027-04-11"),
    "poll_date with a time": ("2030-06-09", "2030-06-09T08:00:00", "poll_date", "TOML date like 2027-04-11"),
    "unknown timezone": ("Europe/Paris", "Europe/Pariss", "timezone", "'Europe/Pariss'"),
    "timezone a region, not a zone": ("Europe/Paris", "Europe", "timezone", "'Europe'"),
    "unknown language": ('"fr"', '"de"', "language", "'de'"),
    "language as a list": ('"fr"', '["fr", "en"]', "language", "not one of"),
    "hour 25": ("08:30-20:00", "25:00-20:00", "sending_hours", "00-23"),
    "hours overnight": ("08:30-20:00", "20:00-08:00", "sending_hours", "start must be before end"),
    "days backwards": ("mon-sat", "sun-mon", "sending_days", "forwards"),
    "days in French": ("mon-sat", "lundi", "sending_days", "'lundi'"),
    "expiry 0 days": (TEXTS, "\nexpiry_days = 0" + TEXTS, "expiry_days", "between 1 and 90"),
    "expiry 91 days": (TEXTS, "\nexpiry_days = 91" + TEXTS, "expiry_days", "between 1 and 90"),
    "expiry as text": (TEXTS, '\nexpiry_days = "7"' + TEXTS, "expiry_days", "between 1 and 90"),
    "notice_url not a link": ("https://example.org", "example.org", "notice_url", "http(s)"),
    "invalid TOML": ('id = "essai"', 'id = "essai', "(file)", "TOML"),
    "conversion in a placeholder": ("note. {controller}", "note. {controller!x}", "texts.declined",
                                    "malformed placeholder"),
    "format spec in a placeholder": ("note. {controller}", "note. {controller:d}", "texts.declined",
                                     "malformed placeholder"),
    "text longer than an SMS can be": ("premier message.", "premier message " + "x" * 1600 + ".",
                                       "texts.content[0]", "at most 1600"),
    "half a day range": ("mon-sat", "mon-", "sending_days", "'mon-'"),
    "end before the poll": (TEXTS, "\nend_date = 2030-06-01" + TEXTS, "end_date", "before the last poll_date"),
    "sender in Arabic-Indic digits": ('"38000"', '"٣٨٠٠٠"', "sender", "must accept replies"),
    "a width in a placeholder": ("note. {controller}", "note. {controller:>2000000000}", "texts.declined",
                                 "malformed placeholder {controller:>2000000000}"),
    "a field inside a format spec": ("note. {controller}", "note. {controller:{purpose.x}}", "texts.declined",
                                     "malformed placeholder"),
    "an integer of 5,000 digits": (TEXTS, "\nexpiry_days = " + "9" * 5000 + TEXTS, "(file)", "TOML"),
    "arrays nested 600 deep": ("2030-06-09", "[" * 600 + "2030-06-09" + "]" * 600, "(file)", "TOML"),
    "poll date in year 1": ("2030-06-09", "0001-01-01", "poll_date", "2000 to 2199"),
    "end date a typo for 2030": (TEXTS, "\nend_date = 0030-06-30" + TEXTS, "end_date", "2000 to 2199"),
    "STOP stuck to a placeholder": ("premier message. STOP pour", "premier message. {controller}STOP pour",
                                    "texts.content[0]", "must offer STOP"),
    "STOP cut by a placeholder": ("OUI ou STOP.", "OUI ou ST{controller}OP.", "texts.consent_request",
                                  "STOP instruction"),
    "help without STOP": ("STOP pour refuser.", "Merci.", "texts.help", "STOP"),
    "clarification without controller": ("OUI ou STOP. {controller}", "OUI ou STOP.", "texts.clarification",
                                         "{controller}"),
    "a gateway no deployment has": (TEXTS, '\ngateway = "orange"' + TEXTS, "gateway", "not one of"),
    "STOP reply without controller": ("Opposition enregistree. {controller}", "Opposition enregistree.",
                                      "texts.stopped", "{controller}"),
}


@pytest.mark.parametrize(("old", "new", "key", "problem"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_flow_is_refused_naming_key_and_problem(
        tmp_path: Path, old: str, new: str, key: str, problem: str) -> None:
    error = refusal(write(tmp_path, old, new))
    assert error.key == key
    assert problem in error.problem


# COMPLIANCE.md A.4: who, why, where the number came from, the notice, and how to refuse.
@pytest.mark.parametrize(("old", "new", "problem"), [
    ("{controller} : acceptez-vous", "Acceptez-vous", "controller"),
    ("de {purpose} ?", "de recevoir nos SMS ?", "purpose"),
    ("Source : {source}. ", "", "source"),
    ("Infos : {notice_url}", "Infos en mairie", "notice_url"),
    ("OUI ou STOP.", "OUI ou NON.", "STOP"),
], ids=["controller", "purpose", "source", "notice URL", "STOP"])
def test_a_consent_request_missing_a_mention_is_refused(tmp_path: Path, old: str, new: str, problem: str) -> None:
    error = refusal(write(tmp_path, old, new))
    assert error.key == "texts.consent_request"
    assert problem in error.problem


def test_a_one_way_alphanumeric_sender_is_refused(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, '"38000"', '"CLAIRE2027"'))
    assert error.key == "sender"
    assert "one-way" in error.problem


@pytest.mark.parametrize("sender", ["+33612345678", "38123", "MG" + "0123456789abcdef" * 2],
                         ids=["E.164", "short code", "messaging service"])
def test_a_reply_capable_sender_is_accepted(tmp_path: Path, sender: str) -> None:
    assert load_flow(write(tmp_path, '"38000"', f'"{sender}"')).sender == sender


@pytest.mark.parametrize("gateway", ["twilio", "ovh"])
def test_a_flow_names_the_provider_it_sends_through(tmp_path: Path, gateway: str) -> None:
    assert load_flow(write(tmp_path, TEXTS, f'\ngateway = "{gateway}"' + TEXTS)).gateway == gateway
    assert load_flow(write(tmp_path, "", "")).gateway == ""


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "flow.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TEMPLATE.encode())
    assert load_flow(path).id == "essai"


def test_every_round_of_an_election_gets_its_silence(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, "poll_date = 2030-06-09", "poll_date = [2030-06-23, 2030-06-09]"))
    assert flow.poll_dates == (dt.date(2030, 6, 9), dt.date(2030, 6, 23))
    saturday_between = dt.datetime(2030, 6, 22, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert flow.window(saturday_between).reason == "electoral silence"


def test_a_latin1_file_is_refused_as_not_utf8(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, "C'est note.", "C'est noté.", encoding="latin-1"))
    assert error.key == "(file)"
    assert "UTF-8" in error.problem


def test_two_flows_with_the_same_id_are_refused(tmp_path: Path) -> None:
    first, second = write(tmp_path, name="a.toml"), write(tmp_path, name="b.toml")
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert (caught.value.path, caught.value.key) == (str(second), "id")
    assert "'essai'" in caught.value.problem and str(first) in caught.value.problem


def test_stop_in_a_placeholder_is_no_stop_offered(tmp_path: Path) -> None:
    path = write(tmp_path, 'controller = "Liste Essai"', 'controller = "Liste STOP"')
    path.write_text(path.read_text().replace("premier message. STOP pour ne plus recevoir", "votez pour nous"))
    error = refusal(path)
    assert (error.key, error.problem) == ("texts.content[0]", "must offer STOP")


def test_what_is_not_a_regular_file_of_a_page_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert "not a regular file" in refusal(fifo).problem
    large = write(tmp_path, TEXTS, "\n# " + "x" * 100_000 + TEXTS)
    assert "larger than 100 kB" in refusal(large).problem


def test_an_editors_lock_file_beside_the_flows_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / ".#flow.toml").symlink_to("root@host.1234:1700000000")  # emacs, while editing flow.toml
    assert list(load_flows(tmp_path)) == ["essai"]


def test_a_directory_without_flows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert (caught.value.path, caught.value.key) == (str(tmp_path), "*.toml")
    assert "no flow files" in caught.value.problem


def all_texts(flow: Flow) -> list[str]:
    texts = flow.texts
    return [texts.consent_request, texts.confirmation, texts.declined, texts.stopped, texts.help,
            texts.clarification, *texts.content]


def test_the_shipped_flows_load_with_every_placeholder_filled() -> None:
    flows = load_flows(ROOT / "flows")
    assert set(flows) == {"demo", "presidentielle-2027"}
    for flow in flows.values():
        for text in all_texts(flow):
            assert "{" not in text and "}" not in text, (flow.id, text)
        assert flow.controller in flow.texts.consent_request


def test_content_hash_is_stable_and_follows_the_texts(tmp_path: Path) -> None:
    original = load_flow(write(tmp_path)).content_hash
    assert load_flow(write(tmp_path)).content_hash == original
    assert load_flow(write(tmp_path, "# A valid", "# A tidy")).content_hash == original  # comments don't count
    assert load_flow(write(tmp_path, "premier message", "second message")).content_hash != original


def test_defaults_expire_in_seven_days_and_send_monday_to_saturday(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path))
    assert flow.expiry_seconds == 7 * 24 * 3600
    assert flow.sending_hours.weekdays == frozenset({0, 1, 2, 3, 4, 5})


@given(st.floats(min_value=dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp(),
                 max_value=dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp()),
       st.sampled_from(sorted(load_flows(ROOT / "flows"))), st.sampled_from(sorted(REGIONS)))
def test_the_once_a_minute_window_answer_is_the_full_one(epoch: float, flow_id: str, region: str) -> None:
    flow = load_flows(ROOT / "flows")[flow_id]
    assert flow.is_open(epoch, region) == flow.window(epoch, region).open


def full_validity(flow: Flow, epoch: float, region: str) -> int:
    """What `validity` answered when it worked the closing out for each text."""
    return max(0, min(MAX_VALIDITY, int(flow.closes_at(epoch, region).timestamp() - epoch)))


def full_opens_at(flow: Flow, epoch: float, region: str) -> float | None:
    """What the workers' `_opens_at` answered when it worked the window out for each text."""
    window = flow.window(epoch, region)
    if window.open and full_validity(flow, epoch, region) < MIN_VALIDITY:
        window = flow.window(epoch + MIN_VALIDITY, region)
    if window.open:
        return epoch
    return None if window.opens_at is None else window.opens_at.timestamp()


@given(st.floats(min_value=dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp(),
                 max_value=dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp()),
       st.sampled_from(sorted(load_flows(ROOT / "flows"))), st.sampled_from(sorted(REGIONS)))
def test_the_once_a_minute_closing_gives_each_text_its_full_validity(epoch: float, flow_id: str, region: str) -> None:
    flow = load_flows(ROOT / "flows")[flow_id]
    assert validity(flow, epoch, region) == full_validity(flow, epoch, region)
    assert _opens_at(flow, epoch, region) == full_opens_at(flow, epoch, region)


@pytest.mark.parametrize("flow_id", ["demo", "presidentielle-2027"])
def test_the_window_answer_turns_on_the_minute(flow_id: str) -> None:
    """Just before, at and after each limit, around the opening hour and the first round's silence."""
    flow = load_flows(ROOT / "flows")[flow_id]
    poll = flow.poll_dates[0]
    opening = dt.datetime.combine(dt.date(2026, 12, 1), flow.sending_hours.start, flow.timezone)
    silence = dt.datetime.combine(poll - dt.timedelta(days=1), dt.time(0, 0), flow.timezone)
    guadeloupe = dt.datetime.combine(dt.date(2026, 12, 1), flow.sending_hours.start, ZoneInfo("America/Guadeloupe"))
    closing = dt.datetime.combine(dt.date(2026, 12, 1), flow.sending_hours.end, flow.timezone)
    last_minute = closing - dt.timedelta(seconds=MIN_VALIDITY)  # from here on, a text waits for the next window
    for moment, region in ((opening, ""), (silence, ""), (guadeloupe, "G"), (silence, "G"), (opening, "G"),
                           (closing, ""), (last_minute, ""), (last_minute, "G")):
        for offset in (-60.5, -0.001, 0, 0.001, 59.999):
            epoch = moment.timestamp() + offset
            assert flow.is_open(epoch, region) == flow.window(epoch, region).open, (moment, region, offset)
            assert validity(flow, epoch, region) == full_validity(flow, epoch, region), (moment, region, offset)
            assert _opens_at(flow, epoch, region) == full_opens_at(flow, epoch, region), (moment, region, offset)
    assert flow.is_open(guadeloupe.timestamp(), "G") and not flow.is_open(guadeloupe.timestamp() - 1, "G")
    assert flow.is_open(guadeloupe.timestamp() - 1)  # the same instant is mid-afternoon in Paris


@pytest.mark.parametrize("call", [Flow.window, Flow.is_open, validity])
def test_an_unknown_region_is_a_corrupt_record_and_raises(call) -> None:
    flow = load_flows(ROOT / "flows")["demo"]
    with pytest.raises(ValueError, match="unknown region 'x'"):
        call(flow, dt.datetime(2026, 12, 1, 10, tzinfo=PARIS).timestamp(), "x")


EARLY = ('sending_hours = "08:30-20:00"\nsending_days = "mon-sat"',
         'sending_hours = "01:00-08:00"\nsending_days = "mon-sun"')


@pytest.mark.parametrize(("moment", "seconds"), [
    # 01:00 to 08:00 on the night clocks go forward is six real hours, not seven.
    (dt.datetime(2027, 3, 28, 1, 0, tzinfo=PARIS), 6 * 3600),
    # ... and eight on the night they go back.
    (dt.datetime(2027, 10, 31, 1, 0, tzinfo=PARIS), 8 * 3600),
    (dt.datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=PARIS), 5 * 3600 + 1800),  # the second 02:30
    (dt.datetime(2027, 11, 7, 1, 0, tzinfo=PARIS), 7 * 3600),
])
def test_validity_counts_the_seconds_that_really_elapse_until_the_window_closes(tmp_path: Path, moment,
                                                                               seconds) -> None:
    flow = load_flow(write(tmp_path, *EARLY))
    assert validity(flow, moment.timestamp()) == seconds


def test_validity_ends_when_the_voters_window_does(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, "poll_date = 2030-06-09", "poll_date = 2027-04-11"))
    guadeloupe = ZoneInfo("America/Guadeloupe")
    friday = dt.datetime(2027, 4, 9, 17, 0, tzinfo=guadeloupe).timestamp()  # 23:00 in Paris: shut there
    assert validity(flow, friday) == 0
    assert validity(flow, friday, "G") == 0  # Guadeloupe votes on Saturday: its silence began Friday 00:00
    thursday = dt.datetime(2027, 4, 8, 17, 0, tzinfo=guadeloupe).timestamp()  # 23:00 in Paris
    assert (validity(flow, thursday), validity(flow, thursday, "G")) == (0, 3 * 3600)
    tuesday = dt.datetime(2027, 1, 12, 15, 0, tzinfo=guadeloupe).timestamp()  # 20:00 in Paris
    assert (validity(flow, tuesday), validity(flow, tuesday, "G")) == (0, 5 * 3600)


PRICE = '\n[[prices]]\ngateway = "ovh"\ndestination = "fr-mobile"\neuros = 0.045\nset_on = 2026-10-15\n'


def with_prices(directory: Path, *entries: str) -> Path:
    """Write TEMPLATE with `[[prices]]` entries after its tables."""
    path = write(directory)
    path.write_text(path.read_text(encoding="utf-8") + "".join(entries), encoding="utf-8")
    return path


def test_a_flows_prices_are_exact_and_dated_and_make_no_new_version(tmp_path: Path) -> None:
    plain = load_flow(write(tmp_path, name="plain.toml"))
    flow = load_flow(with_prices(tmp_path, PRICE, PRICE.replace("0.045", '"0,05"').replace("10-15", "12-01")))
    assert [(price.gateway, price.destination, str(price.euros), price.set_on) for price in flow.prices] == [
        ("ovh", "fr-mobile", "0.045", dt.date(2026, 10, 15)), ("ovh", "fr-mobile", "0.05", dt.date(2026, 12, 1))]
    assert flow.content_hash == plain.content_hash  # accounting, not what voters are told


@pytest.mark.parametrize(("old", "new", "key", "problem"), [
    ("set_on = 2026-10-15\n", "", "prices[0].set_on", "missing: the day this price was set"),
    ("set_on = 2026-10-15", 'set_on = ""', "prices[0]", "the price 0.045 has no date"),
    ("euros = 0.045", "euros = -0.045", "prices[0]", "-0.045 is negative"),
    ("euros = 0.045", 'euros = "gratuit"', "prices[0]", "'gratuit' is not a price in euros"),
    ("euros = 0.045", "euros = true", "prices[0]", "'True' is not a price in euros"),
    ("euros = 0.045", "euros = nan", "prices[0]", "'NaN' is not a price in euros"),
    ('"ovh"', '"sinch"', "prices[0]", "unknown gateway 'sinch'"),
    ('"fr-mobile"', '"fr-landline"', "prices[0]", "unknown destination 'fr-landline'; use fr-mobile"),
    ("set_on = 2026-10-15", 'set_on = "bientot"', "prices[0]", "'bientot' is not a date"),
    ("set_on = 2026-10-15", "set_on = 2026-10-15T10:00:00", "prices[0]", "is not a date like 2026-10-15"),
    ("euros = 0.045", "euros = 0.045\ncurrency = \"EUR\"", "prices[0].currency", "unknown key"),
])
def test_a_price_in_a_flow_that_cannot_be_used_is_named(tmp_path: Path, old: str, new: str, key: str,
                                                        problem: str) -> None:
    error = refusal(with_prices(tmp_path, PRICE.replace(old, new)))
    assert error.key == key and problem in error.problem


def test_prices_that_are_not_a_list_of_tables_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + "\n[prices]\novh = 0.045\n", encoding="utf-8")
    assert refusal(path).key == "prices"


def test_the_shipped_example_of_a_flows_prices_loads_once_uncommented(tmp_path: Path) -> None:
    shipped = (ROOT / "flows" / "presidentielle-2027.toml").read_text(encoding="utf-8")
    example = "# [[prices]]\n# gateway"
    assert example in shipped
    lines = shipped.splitlines(keepends=True)
    start = next(n for n, line in enumerate(lines) if line == "# [[prices]]\n")
    for n in range(start, start + 5):
        lines[n] = lines[n].removeprefix("# ")
    path = tmp_path / "presidentielle-2027.toml"
    path.write_text("".join(lines), encoding="utf-8")
    assert [(price.gateway, str(price.euros)) for price in load_flow(path).prices] == [("ovh", "0.0650")]
