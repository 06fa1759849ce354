"""Classify a voter's SMS reply: objection, refusal, rights request, help, opt back in, consent or other.

Pure: no I/O, standard library only. Priority follows COMPLIANCE.md rules 7 and 8:
STOP > NO > DATA > HELP > START > YES > OTHER, and consent only when it is the whole answer.
A request to see one's data ("MES DONNEES") never weakens an objection: "efface mes donnees"
objects, and is checked first.
An objection word typed with one slip still objects; a slip never makes consent.
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
    DATA = "DATA"  # the voter asks what is held on their number (GDPR art. 15): a one-time link answers
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
    r"|(?:ne )?(?:veux|souhaite|desire)s? (?:absolument |surtout |vraiment )?"
    r"(?:plus|pas (?:etre|de sms|de messages|recevoir))"
    r"|plus (?:etre|jamais) contacte\w*|plus de vos (?:sms|messages)|(?:efface|retir|enlev)\w* mes donnees"
    r"|derange\w* plus|withdraw\w*|object\w*|me retir\w*|m enlev\w*"
    r"|(?:do not|don ?t) (?:contact|text|message)"
    r")\b"
)
# Emphatic refusals ("hors de question", "jamais de la vie") answer the question asked: however
# strong, they decline this flow (NO). Only words about being contacted at all object (STOP).
_REFUSAL = re.compile(
    r"\b(?:n+o+n*|nn|nan|nop|nope|nah|jamais|never|not interested|pas? inter+es+\w*|interes+\w* pas"
    r"|pas d ?ac+(?:ord)?|accept\w* pas|pas ok|not ok|pas pour moi|not for me"
    r"|(?:veux|souhaite) (?:absolument |surtout |vraiment )?pas"
    r"|hors de question|pas question|sans facon|(?:absolutely|certainly|definitely) not)\b"
)
# Alone, "absolument pas" refuses; after a "ne" it only stresses a negated verb: "n'hésitez surtout pas".
_EMPHATIC = re.compile(
    r"\b(?:(?:absolument|certainement|surtout|evidemment|carrement) pas|en aucun cas|aucunement|nullement)\b"
)
_NEGATED_VERB = re.compile(r"\bne?\b")
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
# A voter asking to see their data (GDPR art. 15), in a phrase or as the whole answer.
_DATA_QUESTION = re.compile(
    r"\b(?:(?:mes|my|vos|your|quelles?|what|which) (?:\w+ )?(?:donnees?|data)|donnees? (?:personnelles?|perso)"
    r"|personal data|droit d ?acces|right (?:of|to) access|acces (?:a |aux )?(?:mes )?donnees)\b"
)
_DATA_WORDS = frozenset({"donnees", "donnee", "donnes", "donees", "mesdonnees", "data", "mydata", "mes", "my",
                         "personnelles", "personnelle", "perso", "personal", "acces", "access", "rgpd", "gdpr"})
_DATA_CORE = frozenset({"donnees", "donnee", "donnes", "donees", "mesdonnees", "data", "mydata", "rgpd", "gdpr"})
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

# Objection forms as voters type them (COMPLIANCE.md B.8). A word of theirs typed with one slip
# (a letter dropped, added or changed, or two neighbours swapped: Damerau distance 1) is read as
# the word. Five letters or more: shorter words have real words one slip away. Four letters take
# only a swap, which keeps every letter: dropping or changing one turns STOP into STP, TOP, STEP,
# SHOP (a doubled letter, STOOP, is the objection pattern's own). Words under four stay exact.
_SLIP_WORDS = (
    "stop quit stopsms stopall arret arrete arretes arreter arretez desabo desabonne desabonner desabonnez"
    " desabonnement desinscrire desinscrivez desinscription supprime supprimer supprimez annuler annulez"
    " annulation unsubscribe cancel revoke revoquer optout oppose opposition refuse withdraw objection"
).split()
_SLIP_PHRASES = (
    "ne plus recevoir", "laissez moi tranquille", "ne me contactez plus", "ne m ecrivez plus",
    "ne m envoyez plus", "ne me derangez plus", "retirez mon numero", "foutez moi la paix",
    "plus de messages", "leave me alone", "remove my number",
)  # fmt: skip
# Real words one slip from an objection word (found against French and English word lists) that a
# voter may write meaning just that. "arete" stays a slip: in a reply it is "arrête", not a fishbone.
LOOKALIKES = frozenset(
    "adret armet arrest garret jarret acrete aprete arpete arrente jarrete rarete apretes arrentes jarretes"
    " raretes arrenter jarreter arrentez jarretez subprime surprime anneler annelez cancer carcel chancel"
    " evoke revoie revole revote evoquer appose apposition defuse recuse refuge refuie refute reuse"
    " abjection".split()
)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # folded keywords are ASCII; a slip is a key, not an accent


def _one_slip(word: str) -> set[str]:
    """Return every word one letter dropped, added, changed, or one adjacent swap away from `word`."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    dropped = {a + b[1:] for a, b in splits if b}
    swapped = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    changed = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    added = {a + c + b for a, b in splits for c in _LETTERS}
    return (dropped | swapped | changed | added) - {word}


def _slips() -> dict[str, str]:
    """Map each slip of an objection form's words to the word; refuse one that reads as anything else."""
    table: dict[str, str] = {}
    # Single words last: a slip shared with a phrase word corrects to the word that objects alone.
    for form in (*_SLIP_PHRASES, *_SLIP_WORDS):
        if not _OBJECTION.search(form):
            raise ValueError(f"slips of {form!r} would be corrected to a form that does not object")
        for word in form.split():
            if len(word) >= 4:
                slips = _one_slip(word)
                if len(word) == 4:  # a swap only: the one slip that keeps every letter
                    slips = {slip for slip in slips if sorted(slip) == sorted(word)}
                table.update(dict.fromkeys(slips, word))
    exact = {word for form in (*_SLIP_PHRASES, *_SLIP_WORDS) for word in form.split()}
    if stale := LOOKALIKES - table.keys():
        raise ValueError(f"lookalikes no objection word is one slip from: {sorted(stale)}")
    # A slip must never make consent, a request for help or an opt-in unreachable.
    known = _HELP_WORDS | _START_WORDS | _FILLER  # one-letter short forms are no slip of a 4+ letter word
    if clashes := sorted(w for w in table if w in known or _CONSENT_WORD.fullmatch(w)):
        raise ValueError(f"slips of objection words that already mean something else: {clashes}")
    return {slip: word for slip, word in table.items() if slip not in exact and slip not in LOOKALIKES}


_SLIPS = _slips()


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
    if (
        _OBJECTION.search(text)
        or (_SPELLED.search(text) and _OBJECTION.search(_SPELLED.sub(r"\1", text)))
        or _objects_with_a_slip(text)
    ):
        return Reply.STOP
    text = _AFFIRMING.sub(" ", text)
    yes_short, no_short = _SHORT_FORMS.get(language, _NO_SHORT_FORMS)
    words = _meaningful(text)
    if _REFUSAL.search(text) or _refuses_emphatically(text) or (len(words) == 1 and words[0] in no_short):
        return Reply.NO
    if _DATA_QUESTION.search(text) or (_DATA_CORE.intersection(words) and all(w in _DATA_WORDS for w in words)):
        return Reply.DATA
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


def _objects_with_a_slip(text: str) -> bool:
    """Say whether the reply objects once its slipped words are read as the objection words they miss."""
    words = text.split()
    if not any(w in _SLIPS for w in words):
        return False
    return _OBJECTION.search(" ".join(_SLIPS.get(w, w) for w in words)) is not None


def _refuses_emphatically(text: str) -> bool:
    """Say whether an emphatic negation refuses, rather than stressing an earlier "ne"."""
    match = _EMPHATIC.search(text)
    return match is not None and _NEGATED_VERB.search(text, 0, match.start()) is None
