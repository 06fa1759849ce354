"""The signature check accepts exactly what twilio's own validator accepts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from bot.signatures import FormParams, Validator

TOKEN = "test-auth-token-0123456789abcdef"
urls = st.sampled_from(["https://bot.example.org/sms/inbound", "https://bot.example.org:443/sms/inbound",
                        "http://127.0.0.1:8000/sms/inbound", "http://bot.example.org/base/sms/inbound?x=1"])
params = st.lists(st.tuples(st.sampled_from(["From", "To", "Body", "MessageSid"]), st.text(max_size=20)),
                  max_size=6)


@given(urls, urls, params, st.booleans())
def test_accepts_exactly_what_twilio_accepts(seen: str, signed: str, pairs: list[tuple[str, str]],
                                             genuine: bool) -> None:
    """Twilio signed `signed`; the app sees `seen` (the same URL with or without its port, or another)."""
    form = FormParams(MultiDict(pairs))
    reference = RequestValidator(TOKEN)
    signature = reference.compute_signature(signed, form) if genuine else "bm90IGEgc2lnbmF0dXJl"
    assert Validator(TOKEN).validate(seen, form, signature) == reference.validate(seen, form, signature)


def test_the_port_twilio_may_add_or_drop_is_still_accepted() -> None:
    form = FormParams(MultiDict([("Body", "oui")]))
    signature = RequestValidator(TOKEN).compute_signature("https://bot.example.org:443/sms/inbound", form)
    assert Validator(TOKEN).validate("https://bot.example.org/sms/inbound", form, signature)
    assert not Validator("another-token").validate("https://bot.example.org/sms/inbound", form, signature)
    assert not Validator(TOKEN).validate("https://bot.example.org/sms/inbound", form, "")
