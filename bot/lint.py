"""Lint a loaded flow: segments and encoding of each text, costly or unanswerable wording (rule F.19)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bot.flows import TEXT_KEYS, Flow, FlowError
from bot.prices import Price
from bot.segments import is_gsm7, segments, ucs2_characters

MAX_SEGMENTS = 10  # past this a text costs like a letter; Twilio also advises against it
MAX_REQUEST_SEGMENTS = 2  # the consent request goes to every number of the list
PER = 1000
# GSM-7 stand-ins for the characters French texts use most that force UCS-2.
SUGGESTIONS = {
    "ê": "e", "â": "a", "î": "i", "ô": "o", "û": "u", "ë": "e", "ï": "i", "ç": "c", "ÿ": "y",
    "œ": "oe", "Œ": "OE", "À": "A", "Â": "A", "È": "E", "Ê": "E", "Ë": "E", "Î": "I", "Ï": "I",
    "Ô": "O", "Ù": "U", "Û": "U", "’": "'", "‘": "'", "“": '"', "”": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "…": "...", "\u00a0": " ", "\u202f": " ",
}
LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
# OVHcloud's shared short codes route a voter's answer by the last text sent to them, for a while only.
OVH_REPLY_HOURS = 48
# French freephone numbers (0800-0805): a voter cannot text one, so STOP must go to the sender.
FREEPHONE = re.compile(r"(?<![\d+])(?:(?:\+|00)33[\s.-]?(?:\(0\)[\s.-]?)?|0)8[\s.-]?0[0-5](?:[\s.-]?\d){6}(?!\d)")


@dataclass(frozen=True)
class Finding:
    """One problem in a flow file: an error blocks it, a warning costs money or answers."""

    level: str  # "error" or "warning"
    key: str
    message: str


@dataclass(frozen=True)
class Row:
    """How one text is encoded and billed, and how to bring it back to GSM-7."""

    key: str
    text: str
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int
    segments: int
    forcing: tuple[tuple[str, str | None], ...]  # (character forcing UCS-2, its GSM-7 stand-in)
    rewrite: str | None  # the text with every stand-in, when that makes it GSM-7
    rewrite_segments: int | None


@dataclass(frozen=True)
class Report:
    """Everything the linter says about one flow file."""

    path: str
    flow_id: str | None
    rows: tuple[Row, ...]
    findings: tuple[Finding, ...]
    request_cost: int | None  # segments to ask PER numbers
    consented_cost: int | None  # segments to confirm and send the first content to PER voters
    prices: tuple[Price, ...] = ()  # the flow's own [[prices]]

    @property
    def errors(self) -> list[Finding]:
        """Return the findings that block the flow."""
        return [finding for finding in self.findings if finding.level == "error"]


def show(character: str) -> str:
    """Name a character so that invisible ones (non-breaking spaces) can be seen."""
    return character if character.isprintable() and not character.isspace() else f"U+{ord(character):04X}"


def describe(forcing: tuple[tuple[str, str | None], ...]) -> str:
    """Say which characters force UCS-2 and what to write instead."""
    return ", ".join(f"{show(c)} → {'space' if s == ' ' else s or '(no GSM-7 suggestion)'}" for c, s in forcing)


def suggest(text: str) -> str:
    """Replace every character with a known GSM-7 stand-in."""
    return "".join(SUGGESTIONS.get(character, character) for character in text)


def row(key: str, text: str) -> Row:
    """Describe one text's encoding and cost."""
    if is_gsm7(text):
        return Row(key, text, "GSM-7", len(text), segments(text), (), None, None)
    forcing = tuple((character, SUGGESTIONS.get(character)) for character in ucs2_characters(text))
    rewrite = suggest(text)
    fits = is_gsm7(rewrite)
    return Row(key, text, "UCS-2", len(text), segments(text), forcing,
               rewrite if fits else None, segments(rewrite) if fits else None)


def texts(flow: Flow) -> list[tuple[str, str]]:
    """Return every text of `flow` with its key, in file order."""
    keyed = [(f"texts.{key}", getattr(flow.texts, key)) for key in TEXT_KEYS]
    return keyed + [(f"texts.content[{n}]", message) for n, message in enumerate(flow.texts.content)]


def lint_flow(flow: Flow) -> Report:
    """Lint a flow that loaded: the rules loading leaves to the linter."""
    rows = tuple(row(key, text) for key, text in texts(flow))
    findings = [finding for each in rows for finding in _text_findings(each)]
    request = rows[0]
    if request.segments > MAX_REQUEST_SEGMENTS:
        findings.append(Finding("warning", request.key, f"{request.segments} segments; keep the consent request "
                                f"to {MAX_REQUEST_SEGMENTS} or fewer, it goes to every number"))
    if not flow.notice_url.startswith("https://"):
        findings.append(Finding("warning", "notice_url", f"{flow.notice_url} is not https"))
    findings += provider_findings(flow, rows)
    findings.sort(key=lambda finding: finding.level != "error")
    by_key = {each.key: each.segments for each in rows}
    consented = by_key["texts.confirmation"] + by_key["texts.content[0]"]
    return Report(flow.path, flow.id, rows, tuple(findings), request.segments * PER, consented * PER, flow.prices)


def lint_error(error: FlowError) -> Report:
    """Report a flow file that failed to load."""
    return Report(error.path, None, (), (Finding("error", error.key, error.problem),), None, None)


def provider_findings(flow: Flow, rows: tuple[Row, ...]) -> list[Finding]:
    """Say what the flow's provider changes in what a voter receives or can answer."""
    if flow.gateway != "ovh" or flow.sender.startswith("+"):
        return []  # an OVHcloud virtual number is a number like any other
    findings = [Finding("warning", "sender", f"an OVHcloud short code takes a voter's answers for about "
                        f"{OVH_REPLY_HOURS} h after the last text sent to them: a STOP later than that reaches "
                        "only OVHcloud's STOP list (run `reconcile` to record it)")]
    findings += [Finding("warning", each.key, "a link sent from an OVHcloud short code may be refused, or held "
                         "until OVHcloud approves it") for each in rows if LINK.search(each.text)]
    return findings


def _text_findings(each: Row) -> list[Finding]:
    findings = []
    if each.segments > MAX_SEGMENTS:
        findings.append(Finding("error", each.key, f"{each.segments} segments; keep every text to "
                                f"{MAX_SEGMENTS} or fewer"))
    if each.encoding == "UCS-2":
        cheaper = f", {each.rewrite_segments} in GSM-7 with the suggestions" if each.rewrite else ""
        findings.append(Finding("warning", each.key, f"UCS-2 because of {' '.join(show(c) for c, _ in each.forcing)}: "
                                f"{each.segments} segment(s){cheaper}"))
    for match in FREEPHONE.finditer(each.text):
        findings.append(Finding("warning", each.key, f"freephone number {match.group()!r}: voters cannot text "
                                "a 0800-0805 number; STOP must be answered to the sender"))
    return findings


def check_ids(reports: list[Report]) -> list[Report]:
    """Add an error to every file whose flow id another file already uses, as loading all flows refuses."""
    first: dict[str, str] = {}
    checked = []
    for report in reports:
        if report.flow_id is not None and report.flow_id in first:
            clash = Finding("error", "id", f"{report.flow_id!r} is already defined in {first[report.flow_id]}")
            report = replace(report, findings=(clash, *report.findings))
        elif report.flow_id is not None:
            first[report.flow_id] = report.path
        checked.append(report)
    return checked
