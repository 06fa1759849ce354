"""The number's pseudonym is HMAC-SHA256 under the suppression key, whatever the key's length."""

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from bot.pseudonyms import Pseudonyms


@given(key=st.binary(min_size=0, max_size=200), phone=st.text(max_size=40))
def test_pseudonym_is_the_standard_hmac(key: bytes, phone: str) -> None:
    expected = hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()[:32]
    assert Pseudonyms(key)(phone) == expected


def test_each_digest_starts_from_the_keyed_state() -> None:
    pseudonym = Pseudonyms(b"k" * 32)
    first = pseudonym("+33612345678")
    pseudonym("+33698765432")
    assert pseudonym("+33612345678") == first
