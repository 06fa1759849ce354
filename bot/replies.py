"""Classify a voter's SMS reply: objection, refusal, help, opt back in, consent or other.

Pure: no I/O, standard library only. Priority follows COMPLIANCE.md rules 7 and 8:
STOP > NO > HELP > START > YES > OTHER, and consent only when it is the whole answer.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from functools import lru_cache


class Reply(enum.Enum):
    """What a voter's reply means for the consent flow."""

    YES = "YES"
    NO = "NO"
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    OTHER = "OTHER"


# Letter-category apostrophes (ʼ ʻ ˊ) would otherwise glue "dʼaccord" into one word.
_LETTER_APOSTROPHES = str.maketrans({"\u02bc": " ", "\u02bb": " ", "\u02bd": " ", "\u02ca": " "})
_NON_WORD = re.compile(r"[\W_]+")
# No French or English word has a letter three times in a row: "nonnn", "merciii", "stooop".
# Keep two, not one, so "arrrret" still reads "arret".
_ELONGATION = re.compile(r"([a-z])\1{2,}")  # keywords are ASCII once folded
# "S.T.O.P" normalizes to "s t o p": join runs of one-letter words (used for objection only).
_SPELLED = re.compile(r"\b(\w) (?=\w\b)")

_OBJECTION = re.compile(
    r"\b(?:"
    # Words, with the prefixes that cover their French conjugations and nouns.
    r"s+t+o+p\w*|arret\w*|desabo\w*|desinscri\w*|desincri\w*|supprim\w*|annul\w*"
    r"|unsubscrib\w*|unsub|cancel\w*|(?<!week )end|quit|revok\w*|revoqu\w*|opt ?out|spam\w*"
    # Phrases.
    r"|plus recevoir|ne plus (?:me contacter|m ecrire|m envoyer|etre contacte\w*)"
    r"|(?:ne )?m(?:e contacte[rz]?| ecrive[rz]?| envoye[rz]?) plus|plus de (?:sms|messages?)|pas de sms"
    r"|laisse[rz]? (?:moi|nous) tranquilles?|(?:fout|fich)(?:ez|e) (?:moi|nous) la paix"
    r"|(?:retire[rz]?|enleve[rz]?|efface[rz]?) (?:moi|mon numero|mon num)"
    r"|leave me alone|remove (?:me|my number)|take me off"
    # Objection and withdrawal in the words of GDPR art. 7(3) and 21, as voters paraphrase them.
    r"|oppos\w*|refus\w*|retir\w* (?:mon|votre|ton|notre|le|l) ?(?:accord|consentement)"
    r"|(?:ne )?(?:veux|souhaite|desire)s? (?:plus|pas (?:etre|de sms|de messages|recevoir))"
    r"|plus (?:etre|jamais) contacte\w*|plus de vos (?:sms|messages)|efface\w* mes donnees"
    r"|derange\w* plus|withdraw\w*|object\w*|me retir\w*|m enlev\w*"
    r"|(?:do not|don ?t) (?:contact|text|message)"
    r")\b"
)
_REFUSAL = re.compile(
    r"\b(?:n+o+n*|nn|nan|nop|nope|nah|jamais|never|not interested|pas? inter+es+\w*|interes+\w* pas"
    r"|pas d ?ac+(?:ord)?|accept\w* pas|pas ok|not ok|pas pour moi|not for me|(?:veux|souhaite) pas)\b"
)
# Affirming phrases whose words would otherwise read as refusal ("no problem") or noise.
_AFFIRMING = re.compile(
    r"\b(?:(?:pas de|sans) (?:probleme|souci)s?|no (?:problem|worries)|tout a fait|bien sur"
    r"|of course|avec plaisir|thank you)\b"
)
_HELP_QUESTION = re.compile(
    r"\b(?:qui etes vous|vous etes qui|qui est ce|c ?est qui|c qui|t es qui|qui es tu"
    r"|(?:comment|ou) (?:avez vous|vous avez) (?:eu |obtenu |trouve |recupere )?mon (?:numero|num|tel)"
    r"|d ou (?:vient|viens|provient|sortez vous) mon (?:numero|num)"
    r"|qui vous a (?:donne|fourni|transmis) mon (?:numero|num)"
    r"|who is (?:this|that)|who s this|whos this|who are you|how did you get my (?:number|phone)"
    r"|plus d infos?|more info)\b"
)
# Fold multi-word consent into one word before the whole-answer test.
_AGREEMENT = re.compile(r"\b(?:je suis |suis )?d ?ac+(?:ord)?\b")
_ACCEPT_SUBJECT = re.compile(r"\b[ji] ?(?=accept)")
_CONSENT_WORD = re.compile(r"o+u+i+|ou+a+i+[sp]?|y+e+s+|ye+[ph]|yeah|yup|o+k+(?:a+y+|e+y|i)?|daccord|accept(?:e|ee)?")
_FILLER = frozenset(
    "merci mrc beaucoup bcp bonjour bjr bonsoir bsr salut slt hello hi hey coucou svp stp please pls plz"
    " thanks thank thx you bien sur volontiers avec plaisir tres of course sure absolument evidemment"
    " certainement carrement parfait super genial madame monsieur mme mr cordialement bonne journee"
    " soiree a vous aussi et".split()
)
_HELP_WORDS = frozenset({"aide", "info", "infos", "information", "informations", "help", "contact", "qui", "who"})
_START_WORDS = frozenset({"start", "unstop"})
# One-letter answers mean yes/no only where the flow's language makes them unambiguous
# ("y" is a French word, "o" is not English); "n" reads as no in both.
_SHORT_FORMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "fr": (frozenset({"o"}), frozenset({"n"})),
    "en": (frozenset({"y"}), frozenset({"n"})),
}
_NO_SHORT_FORMS: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())


def _fold_char(char: str) -> str:
    """Fold one non-ASCII character: drop accents, symbols and invisible characters."""
    category = unicodedata.category(char)
    if category == "Cf":  # zero-width space, soft hyphen: invisible, and they sit inside words
        return ""
    if category[0] not in "LMN":  # before NFKD, or "™" and "№" would decompose into "tm" and "no"
        return " "
    folded = unicodedata.normalize("NFKD", char).casefold()
    return "".join(c for c in folded if unicodedata.category(c)[0] != "M").translate(_LETTER_APOSTROPHES)


class _Folding(dict[int, str]):
    """Per-character folds for str.translate, computed on first sight and kept (up to a bound)."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < 20_000:  # bound memory: a hostile sender could cycle through all of Unicode
            self[code] = folded
        return folded


# Folding is per character, so str.translate does it at C speed once a character has been seen.
# Seed Latin-1, Latin Extended-A and general punctuation: French replies live there.
_FOLDING = _Folding((code, _fold_char(chr(code))) for code in (*range(0x80, 0x180), *range(0x2000, 0x2070)))


def normalize(body: str) -> str:
    """Fold a reply to lower-case unaccented words separated by single spaces."""
    if not body.isascii():
        body = body.translate(_FOLDING)
    return _NON_WORD.sub(" ", body.casefold()).strip()


# A reply storm is mostly the same few short texts ("Oui", "STOP", "oui merci"): their verdicts
# are kept. Longer texts are classified afresh, so no sender can fill the cache with long ones.
CACHED_LENGTH = 40


def classify(body: str, language: str = "fr") -> Reply:
    """Classify a reply; when unsure between objection and anything else, return STOP."""
    if len(body) <= CACHED_LENGTH:
        return _classify_short(body, language)
    return classify_fresh(body, language)


@lru_cache(maxsize=4096)
def _classify_short(body: str, language: str) -> Reply:
    return classify_fresh(body, language)


def classify_fresh(body: str, language: str = "fr") -> Reply:
    """Classify as `classify` does, without its cache (a text seen for the first time)."""
    text = normalize(body)
    if not text:
        return Reply.OTHER
    # Search before substituting: re.sub with a template costs more than the whole fast path.
    if _ELONGATION.search(text):
        text = _ELONGATION.sub(r"\1\1", text)
    if _OBJECTION.search(text) or (_SPELLED.search(text) and _OBJECTION.search(_SPELLED.sub(r"\1", text))):
        return Reply.STOP
    text = _AFFIRMING.sub(" ", text)
    yes_short, no_short = _SHORT_FORMS.get(language, _NO_SHORT_FORMS)
    words = _meaningful(text)
    if _REFUSAL.search(text) or (len(words) == 1 and words[0] in no_short):
        return Reply.NO
    if _HELP_QUESTION.search(text) or (words and all(w in _HELP_WORDS for w in words)):
        return Reply.HELP
    if "ac" in text:  # "d'accord", "j'accepte": fold into one word, but only when present
        text = _ACCEPT_SUBJECT.sub("", _AGREEMENT.sub("daccord", text))
        words = _meaningful(text)
    if not words or not all(w in _START_WORDS or w in yes_short or _CONSENT_WORD.fullmatch(w) for w in words):
        return Reply.OTHER
    return Reply.START if any(w in _START_WORDS for w in words) else Reply.YES


def _meaningful(text: str) -> list[str]:
    """Return the words of a folded reply that are not politeness."""
    return [w for w in text.split() if w not in _FILLER and not w.startswith("merci")]
