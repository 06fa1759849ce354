"""`flows check` names what breaks the rules, what forces UCS-2, and what a round costs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import lint
from bot.cli import main
from bot.flows import load_flow
from tests.flowfiles import NOTICE

ROOT = Path(__file__).resolve().parent.parent
# A valid, all-GSM-7 flow; each case below changes one thing in it.
TEMPLATE = """\
id = "essai"
controller_id = "liste-essai"
controller = "Liste Essai"
purpose = "recevoir les SMS de la campagne Essai"
source = "le courtier DataTest"
notice_url = "https://example.org/donnees"
poll_date = 2030-06-09
sender = "38000"

[texts]
consent_request = "{controller} : acceptez-vous de {purpose} ? Source : {source}. OUI ou STOP. Infos : {notice_url}"
confirmation = "Merci ! STOP pour annuler. {controller}"
declined = "C'est note. {controller}"
stopped = "Opposition enregistree. {controller}"
help = "{controller}. Numero obtenu via {source}. Vos droits : {notice_url}. STOP pour refuser."
clarification = "Repondez OUI ou STOP. {controller}"
content = ["{controller} : premier message. STOP pour ne plus recevoir"]

""" + NOTICE


def write(directory: Path, old: str = "", new: str = "", *, name: str = "essai.toml") -> Path:
    """Write TEMPLATE with `old` replaced by `new` as a flow file."""
    assert old in TEMPLATE, f"{old!r} is not in the template"
    path = directory / name
    path.write_text(TEMPLATE.replace(old, new, 1), encoding="utf-8")
    return path


def check(*args: str) -> Result:
    """Run `python -m bot flows check ARGS` and return its result."""
    return CliRunner().invoke(main, ["flows", "check", *args], catch_exceptions=False)


@pytest.fixture
def flows_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point FLOWS_DIR at an empty directory (and keep local secrets out of the project)."""
    directory = tmp_path / "flows"
    directory.mkdir()
    monkeypatch.setenv("FLOWS_DIR", str(directory))
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    return directory


def test_a_clean_flow_passes_and_shows_every_text(tmp_path: Path) -> None:
    result = check(str(write(tmp_path)))
    assert result.exit_code == 0, result.output
    for key in ("consent_request", "confirmation", "declined", "stopped", "help", "clarification", "content[0]"):
        assert f"texts.{key} " in result.output
    assert "0 error(s), 0 warning(s)" in result.output


# COMPLIANCE.md A.4 and A.5: the linter refuses what loading refuses, naming the text and the mention.
@pytest.mark.parametrize(("old", "new", "key", "mention"), [
    ("{controller} : acceptez-vous", "Acceptez-vous", "texts.consent_request", "controller"),
    ("de {purpose} ?", "de recevoir nos SMS ?", "texts.consent_request", "purpose"),
    ("Source : {source}. ", "", "texts.consent_request", "source"),
    ("Infos : {notice_url}", "Infos en mairie", "texts.consent_request", "notice_url"),
    ("OUI ou STOP.", "OUI ou NON.", "texts.consent_request", "STOP"),
    ('["{controller} : premier', '["Premier', "texts.content[0]", "controller"),
    ("STOP pour ne plus recevoir", "Bonne journee", "texts.content[0]", "STOP"),
], ids=["controller", "purpose", "source", "notice URL", "STOP", "content controller", "content STOP"])
def test_a_flow_missing_a_mandatory_mention_fails(tmp_path: Path, old: str, new: str, key: str,
                                                  mention: str) -> None:
    path = write(tmp_path, old, new)
    result = check(str(path))
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "error:" in line)
    assert f"{path}: {key}:" in line and mention in line


def test_a_flow_is_found_by_id_in_flows_dir(flows_dir: Path) -> None:
    write(flows_dir, name="a-file-named-otherwise.toml")
    result = check("essai")
    assert result.exit_code == 0, result.output
    assert "essai: " in result.output and "1 flow file(s)" in result.output


def test_an_unknown_flow_id_is_refused_with_the_known_ones(flows_dir: Path) -> None:
    write(flows_dir)
    result = CliRunner().invoke(main, ["flows", "check", "nope"])
    assert result.exit_code == 2
    assert "'nope'" in result.output and "essai" in result.output


def test_without_arguments_every_file_in_flows_dir_is_checked(flows_dir: Path) -> None:
    write(flows_dir, name="a.toml")
    write(flows_dir, "STOP pour annuler", "Merci", name="b.toml")
    result = check()
    assert result.exit_code == 1
    assert "2 flow file(s): 1 error(s)" in result.output
    assert "b.toml: texts.confirmation: must offer STOP" in result.output


def test_two_files_with_the_same_id_fail_as_loading_all_flows_would(flows_dir: Path) -> None:
    write(flows_dir, name="a.toml")
    write(flows_dir, name="b.toml")
    result = check()
    assert result.exit_code == 1
    assert "b.toml: id: 'essai' is already defined in" in result.output


def test_a_text_over_ten_segments_is_an_error(tmp_path: Path) -> None:
    # 678 UCS-2 characters once filled in: more than 10 parts of 67.
    result = check(str(write(tmp_path, "premier message.", "premier message " + "ê" * 620 + ".")))
    assert result.exit_code == 1
    assert "texts.content[0]: 11 segments; keep every text to 10 or fewer" in result.output


# Hand-counted: GSM-7 is 160 septets alone, 153 per part; UCS-2 70 alone, 67 per part; € [ ] take 2 septets.
@pytest.mark.parametrize(("text", "encoding", "count"), [
    ("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("a" * 306, "GSM-7", 2), ("a" * 307, "GSM-7", 3),
    ("ê" * 70, "UCS-2", 1), ("ê" * 71, "UCS-2", 2), ("ê" * 134, "UCS-2", 2), ("ê" * 135, "UCS-2", 3),
    ("€" * 80, "GSM-7", 1), ("€" * 81, "GSM-7", 2), ("[" * 80, "GSM-7", 1), ("]" * 81, "GSM-7", 2),
    ("a" * 159 + "€", "GSM-7", 2), ("a" * 69 + "ç", "UCS-2", 1), ("a" * 160 + "ç", "UCS-2", 3),
    ("Ça va", "GSM-7", 1), ("ça va", "UCS-2", 1), ("été", "GSM-7", 1), ("fête", "UCS-2", 1),
])
def test_segments_match_hand_counts(text: str, encoding: str, count: int) -> None:
    row = lint.row("texts.content[0]", text)
    assert (row.encoding, row.segments, row.characters) == (encoding, count, len(text))


def test_lower_case_c_cedilla_forces_ucs2_but_capital_does_not() -> None:
    assert lint.row("k", "Ça").forcing == ()
    assert lint.row("k", "ça").forcing == (("ç", "c"),)


def test_suggestions_name_each_character_and_the_rewrite_is_gsm7() -> None:
    row = lint.row("texts.help", "Répondez « OUI » à l’envoi")
    assert row.encoding == "UCS-2"
    assert row.forcing == (("«", '"'), ("»", '"'), ("’", "'"))
    assert row.rewrite == 'Répondez " OUI " à l\'envoi'
    assert row.rewrite_segments == 1
    assert lint.describe(row.forcing) == '« → ", » → ", ’ → \''


def test_non_breaking_spaces_are_shown_and_replaced_by_spaces() -> None:
    row = lint.row("k", "OUI\u00a0?\u202f!")
    assert lint.describe(row.forcing) == "U+00A0 → space, U+202F → space"
    assert row.rewrite == "OUI ? !"


def test_a_character_without_suggestion_leaves_no_rewrite() -> None:
    row = lint.row("k", "OUI ✓")
    assert row.forcing == (("✓", None),) and row.rewrite is None
    assert "(no GSM-7 suggestion)" in lint.describe(row.forcing)


def test_the_cli_lists_suggestions_and_the_gsm7_rewrite(tmp_path: Path) -> None:
    path = write(tmp_path, "Repondez OUI ou STOP.", "Répondez « OUI » à l’envoi, ou STOP.")
    result = check(str(path))
    assert result.exit_code == 0, result.output
    assert '    forces UCS-2: « → ", » → ", ’ → \'' in result.output
    assert '    in GSM-7: Répondez " OUI " à l\'envoi, ou STOP. Liste Essai' in result.output
    assert "would be 1 segment(s) in GSM-7" in result.output
    assert "warning:" in result.output and "texts.clarification: UCS-2 because of « » ’" in result.output


@pytest.mark.parametrize("number", ["0800 123 456", "0800123456", "08 00 12 34 56", "08.05.12.34.56",
                                    "+33 800 123 456", "+33 8 05 12 34 56", "+33 (0)800 12 34 56", "0033 800123456"])
def test_a_freephone_number_is_found(number: str) -> None:
    assert lint.FREEPHONE.search(f"Appelez le {number}.")


@pytest.mark.parametrize("number", ["0806 123 456", "01 23 45 67 89", "38000", "06 08 00 12 34", "+33 612345678"])
def test_other_numbers_are_not_freephone(number: str) -> None:
    assert not lint.FREEPHONE.search(f"Appelez le {number}.")


def test_a_freephone_number_is_a_warning_naming_the_text(tmp_path: Path) -> None:
    result = check(str(write(tmp_path, "Vos droits :", "Questions : 0800 123 456. Vos droits :")))
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output
    assert "texts.help: freephone number '0800 123 456'" in result.output


def test_a_long_consent_request_and_a_plain_http_notice_are_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "OUI ou STOP.", "OUI ou STOP. " + "x" * 200)
    path.write_text(path.read_text().replace("https://", "http://"))
    report = lint.lint_flow(load_flow(path))
    assert report.errors == []
    assert {(f.key, f.message.split(";")[0]) for f in report.findings} == {
        ("texts.consent_request", "3 segments"), ("notice_url", "http://example.org/donnees is not https")}
    assert check(str(path)).exit_code == 0


def test_cost_is_counted_per_thousand_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "Merci ! STOP", "Merci ! " + "x" * 160 + " STOP")
    report = lint.lint_flow(load_flow(path))
    assert (report.request_cost, report.consented_cost) == (1000, 3000)  # (2 + 1) x 1000
    assert "cost: 1000 segments per 1000 numbers asked" in check(str(path)).output


def test_the_shipped_flows_pass_and_print_their_cost(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWS_DIR", str(ROOT / "flows"))
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    result = check()
    assert result.exit_code == 0, result.output
    assert " 0 error(s)" in result.output
    shipped = sorted((ROOT / "flows").glob("*.toml"))
    assert result.output.count("cost: ") == len(shipped) >= 2
    assert "numbers asked" in result.output and "consenting voters" in result.output


# What each provider changes in what a voter receives: said per flow.

def test_an_ovh_short_code_flow_is_told_of_its_reply_window_and_its_links(tmp_path: Path) -> None:
    result = check(str(write(tmp_path, 'sender = "38000"', 'sender = "38000"\ngateway = "ovh"')))
    assert result.exit_code == 0, result.output
    assert "sender: an OVHcloud short code takes a voter's answers for about 48 h" in result.output
    # Only texts that carry a link: the consent request and help point to the notice.
    assert "texts.consent_request: a link sent from an OVHcloud short code may be refused" in result.output
    assert "texts.help: a link sent from an OVHcloud short code may be refused" in result.output
    assert "texts.confirmation: a link" not in result.output


@pytest.mark.parametrize("change", ['sender = "38000"\ngateway = "twilio"', 'sender = "+33700000001"\ngateway = "ovh"'],
                         ids=["twilio short code", "ovh virtual number"])
def test_other_senders_get_no_ovh_short_code_warning(tmp_path: Path, change: str) -> None:
    report = lint.lint_flow(load_flow(write(tmp_path, 'sender = "38000"', change)))
    assert not [finding for finding in report.findings if "OVHcloud" in finding.message]
