"""Turn what people type as a phone number into E.164, or say why it cannot be texted."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

# The usual ways French mobiles are written: 06 12 34 56 78, +33 6..., 0033 6..., 6.12.34.56.78
SEPARATORS = re.compile(r"[\s.\-()/]")
FRENCH_MOBILE = re.compile(r"^(?:\+33|0033|0)?([67]\d{8})$")
TEXTABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class PhoneError(ValueError):
    """A number that cannot be texted; the message is the reason."""


def normalize(raw: str, region: str = "FR") -> str:
    """Return the number in E.164 if it is a mobile, else raise PhoneError with the reason."""
    compact = SEPARATORS.sub("", raw)
    match = FRENCH_MOBILE.match(compact)
    if match and region == "FR":
        return "+33" + match.group(1)
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as error:
        raise PhoneError(f"not a phone number ({error})") from error
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid number")
    if phonenumbers.number_type(number) not in TEXTABLE:
        raise PhoneError("not a mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
