"""Turn what people type as a phone number into E.164, or say why it cannot be texted."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

# The usual ways French mobiles are written: 06 12 34 56 78, +33 6..., 0033 6..., 6.12.34.56.78
SEPARATORS = re.compile(r"[\s.\-()/]")
# Digits are ASCII: Python's \d also matches ٧ or ௭, which phonenumbers turns into 7 below.
FRENCH_MOBILE = re.compile(r"^(?:\+33|0033|0)?([67][0-9]{8})\Z")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")  # to fullmatch: "$" would let a final newline through
# Overseas mobiles written the national way look metropolitan: 0639 Mayotte, 0690-0691 Guadeloupe,
# Saint-Barthélemy and Saint-Martin, 0692-0693 Réunion, 0694 Guyane, 0696-0697 Martinique.
OVERSEAS_MOBILE = re.compile(r"^6(?:39|9[0-7])")
LETTER = re.compile(r"[^\W\d_]")
NUMBER_START = re.compile(r"[+\d]")  # where phonenumbers starts reading (any script's digits)
TEXTABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
FRENCH_MOBILE_PREFIXES = ("+336", "+337")  # with 12 characters of E.164: +33 6/7 and 8 digits
FRENCH_MOBILE_E164 = re.compile(r"\+33[67][0-9]{8}")  # what MobileBits and the admit script take


class PhoneError(ValueError):
    """A number that cannot be texted; the message is the reason."""


class MobileBits:
    """A set of French mobiles, one bit each: 25 MB holds all 200 million (+33 6 00 00 00 00 is bit 0)."""

    def __init__(self) -> None:
        self.bits = bytearray(25_000_000)

    def add(self, phone: str) -> bool:
        """Add a French mobile in E.164 (anything may follow its 12 characters); say whether it was new."""
        offset = int(phone[3:12]) - 600_000_000
        byte, bit = offset >> 3, 1 << (offset & 7)
        if self.bits[byte] & bit:
            return False
        self.bits[byte] |= bit
        return True


def normalize(raw: str, region: str = "FR") -> str:
    """Return the number in E.164 if it is a mobile, else raise PhoneError with the reason."""
    compact = SEPARATORS.sub("", raw)
    match = FRENCH_MOBILE.match(compact)
    if match and region == "FR":
        if OVERSEAS_MOBILE.match(match.group(1)):
            raise PhoneError("an overseas mobile (Mayotte, Guadeloupe, Réunion, Guyane, Martinique): "
                             "its local time differs from the flow's")
        return "+33" + match.group(1)
    # phonenumbers skips a label before the number ("Tél : 06 ..."), but reads letters within it
    # as a keypad's digits: 06 12 34 XX XX would be +33 6 12 34 99 99, a stranger.
    start = NUMBER_START.search(raw)
    if start and LETTER.search(raw, start.start()):
        raise PhoneError("not a phone number (letters in it)")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as error:
        raise PhoneError(f"not a phone number ({error})") from error
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid number")
    if phonenumbers.number_type(number) not in TEXTABLE:
        raise PhoneError("not a mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def without_number(text: str, phone: str) -> str:
    """Return `text` with the number `phone` (E.164) taken out, in each form a provider writes it: E.164, its
    digits alone (OVHcloud's), the national form (0...). For what a provider says about a send, which a
    ledger may keep after the number's erasure."""
    if not phone.startswith("+") or len(phone) < 8:
        return text
    forms = [phone, phone[1:]]
    if phone.startswith("+33"):
        forms.append("0" + phone[3:])
    for form in forms:
        text = text.replace(form, "[number]")
    return text
