"""Phone numbers as people type them: one E.164 form for every way of writing a mobile, reasons for the rest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.phones import E164, MobileBits, PhoneError, normalize, without_number


@pytest.mark.parametrize("raw", ["06 12 34 56 78", "0612345678", "+33 6 12 34 56 78", "+33612345678",
                                 "0033 6 12 34 56 78", "6.12.34.56.78", "06-12-34-56-78", "(0)6 12 34 56 78",
                                 "+33 (0)6 12 34 56 78"])
def test_every_usual_way_of_writing_a_french_mobile_gives_one_number(raw):
    assert normalize(raw) == "+33612345678"


@pytest.mark.parametrize("raw, reason", [
    ("01 45 67 89 10", "not a mobile"), ("09 70 12 34 56", "not a mobile"), ("n/a", "not a phone number"),
    ("", "not a phone number"), ("06 12 34", "invalid"), ("0692 12 34 56", "overseas"), ("0639 98 00 01", "overseas"),
    ("0696 00 00 00", "overseas"), ("+33 6 90 12 34 56", "overseas"),
    ("06 12 34 XX XX", "letters"), ("0612345678 poste 12", "letters"), ("tel:01 45 67 89 10", "not a mobile"),
    ("tel:" * 1200 + "0612345678", "not a phone number"),
])
def test_numbers_that_cannot_be_texted_say_why(raw, reason):
    with pytest.raises(PhoneError, match=reason):
        normalize(raw)


@pytest.mark.parametrize("raw", ["Tél : 06 12 34 56 78", "Mobile: 06 12 34 56 78", "Port. 06 12 34 56 78",
                                 "tel:+33612345678"])
def test_a_label_before_the_number_is_passed_over(raw):
    assert normalize(raw) == "+33612345678"


def test_foreign_mobiles_keep_their_country():
    assert normalize("+44 7911 123456") == "+447911123456"
    assert normalize("+262 692 12 34 56") == "+262692123456"


@given(digits=st.from_regex(r"\A[67][0-8][0-9]{7}\Z"), style=st.sampled_from(["0{}", "+33{}", "0033{}", "{}"]),
       separator=st.sampled_from(["", " ", ".", "-"]))
def test_separators_and_prefixes_never_change_the_number(digits, style, separator):
    if digits.startswith(("639", "69")):
        return  # overseas ranges, refused above
    spaced = separator.join(digits[i:i + 2] for i in range(0, 9, 2)) if separator else digits
    assert normalize(style.format(spaced)) == "+33" + digits


@given(st.lists(st.from_regex(r"\+33[67][0-9]{8}", fullmatch=True), max_size=50))
def test_mobile_bits_say_which_mobiles_are_met_for_the_first_time(mobiles: list[str]) -> None:
    bits = MobileBits()
    firsts = [bits.add(phone) for phone in mobiles]
    assert firsts == [phone not in mobiles[:n] for n, phone in enumerate(mobiles)]


def test_mobile_bits_keep_the_ends_of_the_range_apart_and_read_past_a_postcode() -> None:
    bits = MobileBits()
    assert bits.add("+33600000000") and bits.add("+33699999999") and bits.add("+33700000000")
    assert bits.add("+33799999999")
    assert not bits.add("+33600000000/75011")
    assert bits.add("+33600000001/75011")


DIGITS_OF_ANY_SCRIPT = "0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९௦௧௨௩௪௫௬௭௮௯０１２３４５６７８９²"


@given(st.text(alphabet=DIGITS_OF_ANY_SCRIPT + "+ .-()/\n\t", max_size=20))
def test_a_number_comes_out_in_ascii_e164_or_not_at_all(raw: str) -> None:
    try:
        phone = normalize(raw)
    except PhoneError:
        return
    assert E164.fullmatch(phone), phone


def test_digits_of_other_scripts_are_read_as_their_ascii_digits() -> None:
    assert normalize("06 12 34 56 7٧") == "+33612345677"
    assert normalize("٠٦١٢٣٤٥٦٧٨") == normalize("０６ １２ ３４ ５６ ７８") == "+33612345678"


@pytest.mark.parametrize(("text", "left"), [
    ("The 'To' number +33612345678 is not valid.", "The 'To' number [number] is not valid."),
    ("receivers 33612345678 refused", "receivers [number] refused"),
    ("0612345678 n'est pas joignable", "[number] n'est pas joignable"),
    ("Too many requests", "Too many requests"),
    ("+33612345679 is another number", "+33612345679 is another number"),
])
def test_what_a_provider_says_about_a_send_is_kept_without_the_number(text: str, left: str) -> None:
    assert without_number(text, "+33612345678") == left
