"""Contacts files as brokers and spreadsheets really make them: every line accounted for, or a clear error.

The promise (README, "Running a consent round"): imported = queued + rejected + duplicates +
suppressed + already asked + waiting, and every rejected line goes to FILE.rejects.csv (in the
instance directory) with its
line number and reason. Each file below goes through `start_round` on a real Redis (and one
through the `round start` command), and the rejects file is read back line by line.
"""

from __future__ import annotations

import csv
import io
import random
import re
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from rq import Queue

from bot.batches import Batches
from bot.cli import Services, count_lines, main
from bot.contacts import ContactsError
from bot.rounds import ImportReport, Origin, start_round
from bot.sending import queue_for

PARTS = ("queued", "rejected", "duplicate", "suppressed", "already asked", "waiting for another flow's answer")
SPAN = re.compile(r"unreadable CSV on lines? (\d+)(?:-(\d+))?")
FIELD_LIMIT = csv.field_size_limit()  # 131,072 unless someone raised it


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


def run_round(accord, flow, path: Path, data: bytes) -> ImportReport:
    path.write_bytes(data)
    origin = Origin("supporters", "", "", "tests", path.name, "2026-12-01T09:00:00+00:00")
    return start_round(accord, flow, path, origin, rate=1000)


def rejects_file(path: Path) -> Path:
    """Where an import of `path` writes its rejected lines: the instance directory (tests/conftest.py's
    `config` puts it in the test's tmp_path, beside the file)."""
    return path.parent / "instance" / "rejects" / (path.name + ".rejects.csv")


def rejects(path: Path) -> dict[int, str]:
    """Read FILE.rejects.csv back: line number -> reason (none when the file is absent)."""
    written = rejects_file(path)
    if not written.exists():
        return {}
    with written.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["line", "value", "reason"]
    found = {int(line): reason for line, _, reason in rows[1:]}
    assert len(found) == len(rows) - 1, "a line rejected twice"
    return found


def covered(reasons: dict[int, str]) -> set[int]:
    """Every line a reject stands for: one, or the span an unreadable record swallowed."""
    lines = set()
    for line, reason in reasons.items():
        span = SPAN.match(reason)
        last = int(span.group(2) or line) if span else line
        lines.update(range(line, last + 1))
    return lines


def assert_accounted(report: ImportReport, path: Path) -> dict[int, str]:
    """Check the identity, and that each line of the file is a row read or in a reject; return the rejects.

    (The files here hold no multi-line quoted field that parses: each row read is one line.)
    """
    counts = report.counts
    assert counts["imported"] == sum(counts[part] for part in PARTS), dict(counts)
    reasons = rejects(path)
    assert len(reasons) == counts["rejected"]
    assert all(reason.strip() for reason in reasons.values())
    data = path.read_bytes()
    header = 2 if re.match(rb"(\xef\xbb\xbf)?sep=", data, re.IGNORECASE) else 1  # after Excel's "sep=;" line
    lines = len(data.splitlines()) - header  # \r, \n and \r\n, as csv reads them; less the header
    assert counts["imported"] - counts["rejected"] + len(covered(reasons)) == max(lines, 0)
    return reasons


def queued_numbers(accord) -> list[str]:
    """Every number the import queued for the workers, from the batches the jobs name."""
    queue: Queue = queue_for(accord)
    batches = Batches(accord.store)
    return [item.partition("/")[0] for job in queue.get_jobs() for item in batches.read(*job.args) or ()]


# (name, file bytes, {line: reason substring} rejected, numbers queued)
CASES = [
    ("broken quoting", b'telephone;prenom\n0612980001;"Ca"mille\n0612980002;Dominique\n',
     {2: "unreadable CSV on line 2"}, ["+33612980002"]),
    ("an unclosed quote swallows the lines after it", b'telephone;prenom\n0612980001;"Camille\n0612980002;x\n'
     b'0612980003;y\n', {2: "unreadable CSV on lines 2-4"}, []),
    ("NUL bytes", b'telephone;prenom\n06129\x0080001;a\n0612980002;Dom\x00inique\n\x00\n0612980003;\x00\n',
     {2: "not a phone number", 4: "not a phone number"}, ["+33612980002", "+33612980003"]),
    ("a 10,000-character field", b"telephone;prenom\n0612980001;" + b"x" * 10_000 + b"\n0612980002;y\n",
     {}, ["+33612980001", "+33612980002"]),
    ("a field above csv's limit", b"telephone;prenom\n0612980001;" + b"x" * (FIELD_LIMIT + 10) +
     b"\n0612980002;y\n", {2: "field larger than field limit"}, ["+33612980002"]),
    ("a quoted field above csv's limit", b'telephone;prenom\n0612980001;"' + b"x" * (FIELD_LIMIT + 10) +
     b'"\n0612980002;y\n', {2: "field larger than field limit"}, ["+33612980002"]),
    ("a UTF-8 byte-order mark", b"\xef\xbb\xbft\xc3\xa9l\xc3\xa9phone;pr\xc3\xa9nom\n0612980001;Zo\xc3\xa9\n",
     {}, ["+33612980001"]),
    ("mixed line endings", b"telephone;prenom\r\n0612980001;a\n0612980002;b\r01 45 67 89 10;fixe\r\n"
     b"0612980003;c\r\n\r0612980004;d", {4: "not a mobile", 6: "empty line"},
     ["+33612980001", "+33612980002", "+33612980003", "+33612980004"]),
    ("Latin-1", "téléphone;prénom;commune\n0612980001;Zoé;Besançon\n06 12 98 00 02;Anaïs;Sète\n".encode("latin-1"),
     {}, ["+33612980001", "+33612980002"]),
    ("Windows-1252", "telephone;prénom\n0612980001;Œdipe\n0612980002;“Dom”…\n".encode("cp1252"),
     {}, ["+33612980001", "+33612980002"]),
    ("a UTF-8 mark on a Windows-1252 file", b"\xef\xbb\xbftelephone;prenom\n0612980001;\x8cdipe\n", {},
     ["+33612980001"]),
    ("a header only", b"telephone;prenom\n", {}, []),
    ("a header only, without its newline", b"telephone;prenom", {}, []),
    ("trailing separators", b"telephone;prenom;\n0612980001;a;\n0612980002;b;;;\n;;\n",
     {4: "empty line"}, ["+33612980001", "+33612980002"]),
    ("tabs, and a phone column not first", b"prenom\ttelephone\nCamille\nDom\t0612980002\n\t\n",
     {2: "no value in the phone column", 4: "empty line"}, ["+33612980002"]),
    # After a byte-order mark, the header's first quote is text: read as CSV, it ran on over the rows.
    ("a mark, then a quoted separator in the header", b'\xef\xbb\xbf\xef\xbb\xbf"nom_prenom;";telephone\n'
     b"Zoe;0612980001\n", {}, ["+33612980001"]),
    ("the same, a quote closing three lines on", b'\xef\xbb\xbf\xef\xbb\xbf"nom_prenom;";telephone\n'
     b'Zoe;0612980001\nAna;0612980002\n";x\nLea;0612980004\n', {4: "unreadable CSV on lines 4-5"},
     ["+33612980001", "+33612980002"]),
    ("Excel's separator line", b"sep=,\r\ntelephone,prenom\r\n0612980001,a;b\r\nn/a,c\r\n",
     {4: "not a phone number"}, ["+33612980001"]),
    ("a separator line naming a tab, with a mark", b"\xef\xbb\xbfSEP=\t\ntelephone\tprenom\n0612980001\ta;b\n",
     {}, ["+33612980001"]),
    # phonenumbers reads letters as a keypad's digits: a masked number would reach a stranger.
    ("letters in the phone", b"telephone\n06 12 34 XX XX\n0612XXXXXX\n061 INCONNU\ntel:+33 6 12 98 00 01\n",
     {2: "letters", 3: "letters", 4: "letters"}, ["+33612980001"]),
]


@pytest.mark.parametrize("name, data, rejected, queued", CASES, ids=[case[0] for case in CASES])
def test_every_line_of_a_hostile_file_is_accounted_for(accord, flow, tmp_path, name, data, rejected, queued):
    path = tmp_path / "contacts.csv"
    report = run_round(accord, flow, path, data)
    reasons = assert_accounted(report, path)
    assert sorted(reasons) == sorted(rejected)
    for line, expected in rejected.items():
        assert expected in reasons[line], (line, reasons[line])
    assert sorted(queued_numbers(accord)) == sorted(queued)
    assert report.counts["queued"] == len(queued)


@pytest.mark.parametrize("data, message", [
    (b"", "the first line must be a header"),
    (b"\xef\xbb\xbf", "the first line must be a header"),
    (b"\n0612980001\n", "the first line must be a header"),
    (b"\x00\x00\x00\n0612980001\n", "no phone column"),
    (b"0612980001;0612980002\n", "unknown column"),
    (b"telephone;religion\n0612980001;x\n", "special category"),
    ("telephone;Религия\n0612980001;x\n".encode(), "unknown column.*'Религия'"),  # "religion", in Cyrillic
    ("telephone;宗教\n0612980001;x\n".encode(), "unknown column.*'宗教'"),
    (b"t\xc3\xa9l\xc3\xa9phone;pr\xc3\xa9nom\n0612980001;Zo\xe9\n", "read as cp1252: if these names look garbled"),
    ("téléphone;portable\n0612980001;0612980002\n".encode("cp1252"), "all hold the phone"),
    ("telephone\tprenom\r\n0612980001\tZoé\r\n".encode("utf-16"), "unknown column"),  # Excel's "Unicode text"
    # No wording promised for these two: a ContactsError naming the file, not a csv.Error from deep inside.
    (b"telephone;" + b"x" * (FIELD_LIMIT + 10) + b"\n0612980001;a\n", "contacts.csv"),
    (b'telephone;"prenom\n0612980001;a\n0612980002;b\n', "contacts.csv"),  # the header's quote never closes
])
def test_a_file_without_a_usable_header_is_refused_whole(accord, flow, tmp_path, redis_client, data, message):
    path = tmp_path / "contacts.csv"
    with pytest.raises(ContactsError, match=message):
        run_round(accord, flow, path, data)
    assert list(redis_client.scan_iter()) == []
    assert not rejects_file(path).exists()


def test_the_round_command_refuses_an_unreadable_header_with_a_message_not_a_traceback(accord, flow, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"telephone;" + b"x" * (FIELD_LIMIT + 10) + b"\n0612980001;a\n")
    result = CliRunner().invoke(main, ["round", "start", "demo", str(path), "--source-type", "supporters",
                                       "--operator", "tests"], obj=Services(accord))
    assert (result.exit_code, type(result.exception)) == (1, SystemExit), result.exception
    assert f"Error: {path}" in result.output


def hostile_file(lines: int, seed: int = 2027) -> tuple[bytes, dict[int, str], list[str], int]:
    """Make a file mixing every hostility above; return it, its rejected lines, queued numbers, duplicates."""
    rng = random.Random(seed)
    out = [b"\xef\xbb\xbfpr\xe9nom;t\xe9l\xe9phone;commune;code postal"]  # a BOM, on a Windows-1252 file
    rejected: dict[int, str] = {}
    queued: list[str] = []
    duplicates = 0
    national = iter(range(612_000_000, 638_000_000, 3001))  # metropolitan: 0639 is Mayotte
    over = rng.randrange(2, lines + 2)  # one line far above csv's field limit, among the rest

    def fresh() -> str:
        number = str(next(national))
        queued.append("+33" + number)
        return rng.choice([f"0{number}", f"+33{number}", f"0033{number}",
                           f"0{number[0]} {number[1:3]} {number[3:5]} {number[5:7]} {number[7:]}"])

    for line in range(2, lines + 2):
        kind = "over" if line == over else rng.choices(
            ["new", "dup", "landline", "foreign", "junk", "empty", "seps", "nophone", "short", "nul-phone",
             "nul-name", "quote", "long", "quoted", "trailing", "cp1252", "utf8"],
            weights=[40, 6, 4, 3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 4, 3, 3, 3])[0]
        if kind == "over":
            text, rejected[line] = "Long;0612345678;" + "y" * (FIELD_LIMIT * 2) + ";", "field larger than field limit"
        elif kind == "dup" and queued:
            text, duplicates = f"Bis;0{rng.choice(queued)[3:]};Lyon;69001", duplicates + 1
        elif kind == "landline":
            text, rejected[line] = f"Fixe;01 45 67 {line % 100:02d} {line // 100 % 100:02d};Paris;75001", "not a mobile"
        elif kind == "foreign":
            text, rejected[line] = f"Jan;+32 470 {line % 100:02d} 34 56;Bruxelles;", "not a French mobile"
        elif kind == "junk":
            text, rejected[line] = rng.choice(["Ann;n/a;;", "Bob;abc;;", "Cy;12;;", "Di;+;;"]), ""
        elif kind == "empty":
            text, rejected[line] = "", "empty line"
        elif kind == "seps":
            text, rejected[line] = ";;;", "empty line"
        elif kind == "nophone":
            text, rejected[line] = "Camille;;Lyon;69001", "no phone number"
        elif kind == "short":
            text, rejected[line] = "Camille", "no value in the phone column"
        elif kind == "nul-phone":
            text, rejected[line] = "Nul;06\x0012345678;;", "not a phone number"
        elif kind == "quote":
            text, rejected[line] = '"Ca"mille;0612345678;;', f"unreadable CSV on line {line}"
        elif kind == "long":
            text = "x" * 10_000 + f";{fresh()};Metz;57000"
        elif kind == "nul-name":
            text = f"Na\x00ma;{fresh()};;"
        elif kind == "quoted":
            text = f'"Dupont; Camille";"{fresh()}";"Lyon";"69001"'
        elif kind == "trailing":
            text = f"Sacha;{fresh()};Lille;59000;;;"
        elif kind == "cp1252":
            text = f"\x8cdipe \x93le roi\x94;{fresh()};Besan\xe7on;25000"
        elif kind == "utf8":
            text = f"{'Zoé Anaïs'.encode().decode('latin-1')};{fresh()};Sète;34200"
        else:
            text = f"Camille;{fresh()};Lyon;69001"
        out.append(text.encode("latin-1"))
    endings = [rng.choice([b"\r\n", b"\n", b"\r"]) for _ in out[1:]] + [b""]
    for number, raw in enumerate(out[1:]):
        if not raw and endings[number] == b"\r":
            endings[number] = b"\n"  # "\r" then an empty line's "\n" would read as one "\r\n"
    return b"".join(raw + ending for raw, ending in zip(out, endings, strict=True)), rejected, queued, duplicates


def test_five_thousand_hostile_lines_are_each_accounted_for(accord, flow, tmp_path):
    data, rejected, queued, duplicates = hostile_file(5_000)
    path = tmp_path / "broker-export.csv"
    report = run_round(accord, flow, path, data)
    reasons = assert_accounted(report, path)
    assert report.counts["imported"] == 5_000
    assert sorted(reasons) == sorted(rejected)
    for line, expected in rejected.items():
        assert expected in reasons[line], (line, reasons[line])
    assert sorted(queued_numbers(accord)) == sorted(queued)
    assert report.counts["duplicate"] == duplicates
    again = run_round(accord, flow, path, data)  # a second run of the same file asks nobody twice
    assert_accounted(again, path)
    assert (again.counts["queued"], again.counts["already asked"]) == (0, report.counts["queued"])


def test_the_round_command_reports_a_hostile_file_line_by_line(accord, flow, tmp_path):
    data, rejected, queued, _ = hostile_file(600, seed=75)
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["round", "start", "demo", str(path), "--source-type", "supporters",
                                       "--operator", "tests", "--rate", "1000"],
                                obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    counts = {name.strip(): int(value) for name, value in re.findall(r"^\s*([a-z' ]+): (\d+)$", result.stdout,
                                                                     re.MULTILINE)}
    assert counts["imported"] == 600 == sum(counts[part] for part in PARTS)
    assert counts["rejected"] == len(rejected) and counts["queued"] == len(queued)
    assert f"{len(rejected)} rejected line(s) written to {rejects_file(path)}" in result.output
    assert sorted(rejects(path)) == sorted(rejected)


def test_an_earlier_imports_rejects_do_not_outlive_a_clean_file(accord, flow, tmp_path):
    path = tmp_path / "contacts.csv"
    run_round(accord, flow, path, b"telephone\nn/a\n0612980001\n")
    assert list(rejects(path)) == [2]
    report = run_round(accord, flow, path, b"telephone\n0612980002\n")
    assert report.rejects_file is None and rejects(path) == {}


def test_a_rejects_file_that_cannot_be_written_refuses_the_import_before_anything_is_stored(
        accord, flow, tmp_path, redis_client):
    path = tmp_path / "contacts.csv"
    rejects_file(path).mkdir(parents=True)
    with pytest.raises(ContactsError, match="cannot write the rejected lines"):
        run_round(accord, flow, path, b"telephone\nn/a\n0612980001\n")
    assert list(redis_client.scan_iter()) == []


def test_a_rejected_value_never_reaches_a_spreadsheet_as_a_formula(accord, flow, tmp_path):
    path = tmp_path / "contacts.csv"
    run_round(accord, flow, path, b"telephone\n=1+1\n@SUM(1+1)*cmd|' /C calc'!A0\n-2+3\n+44 7911 123456\n-\n")
    with rejects_file(path).open(encoding="utf-8", newline="") as file:
        values = [value for _, value, _ in list(csv.reader(file))[1:]]
    assert values == ["'=1+1", "'@SUM(1+1)*cmd|' /C calc'!A0", "'-2+3", "+44 7911 123456", "-"]


# Header spellings, phone and postcode values as brokers' files carry them, and anything else.
# (No lone "\r": csv.writer leaves it unquoted when lines end in "\n", and every reader then
# starts a new line there.)
def free_text(size: int) -> st.SearchStrategy[str]:
    return st.text(max_size=size).map(lambda text: text.replace("\r", ""))


HEADERS = {"phone": ["telephone", "Téléphone", "N° de téléphone", "Portable", "msisdn"],
           "postcode": ["code postal", "CP", "Code_Postal"], "first_name": ["prénom", "Prenom"], "commune": ["Ville"]}
PHONES = st.one_of(
    st.builds(lambda n, style: style.format(n[0], n[1:3], n[3:5], n[5:7], n[7:]),
              st.from_regex(r"[67][0-8][0-9]{7}", fullmatch=True),
              st.sampled_from(["0{}{}{}{}{}", "0{} {} {} {} {}", "+33 {} {} {} {} {}", "0033{}.{}.{}.{}.{}",
                               "Tél : 0{}{}{}{}{}", "0{} {} {} XX XX", "tel:+33{}{}{}{}{}"])),
    st.sampled_from(["", " ", "n/a", "01 45 67 89 10", "+44 7911 123456", "0692 12 34 56", "=1+1", "06 12"]),
    free_text(20))
POSTCODES = st.one_of(st.sampled_from(["", "67000", "67 000 Strasbourg", "75011, Paris", "Paris", "7501"]),
                      free_text(12))


@st.composite
def contacts_files(draw) -> tuple[bytes, list[str]]:
    """A contacts file any spreadsheet could write, and the phone of each of its records."""
    columns = ["phone", *draw(st.lists(st.sampled_from(["postcode", "first_name", "commune"]), unique=True))]
    columns = draw(st.permutations(columns))
    rows = draw(st.lists(st.fixed_dictionaries(
        {"phone": PHONES, "postcode": POSTCODES, "first_name": free_text(15), "commune": free_text(15)}),
        max_size=15))
    text = io.StringIO()
    writer = csv.writer(text, delimiter=draw(st.sampled_from(";,\t")),
                        lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
                        quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    writer.writerow([draw(st.sampled_from(HEADERS[column])) for column in columns])
    writer.writerows([row[column] for column in columns] for row in rows)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    data = text.getvalue().encode(encoding, errors="replace")
    return data, [row["phone"] for row in rows]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=contacts_files())
def test_any_file_a_spreadsheet_writes_is_accounted_for_line_by_line(accord, flow, tmp_path, redis_client, file):
    data, phones = file
    note(repr(data))
    redis_client.flushall()
    path = tmp_path / "contacts.csv"
    report = run_round(accord, flow, path, data)
    counts = report.counts
    assert counts["imported"] == len(phones)
    assert counts["imported"] == sum(counts[part] for part in PARTS), dict(counts)
    written = rejects(path)
    assert len(written) == counts["rejected"] and list(written) == sorted(written)
    assert all(reason.strip() for reason in written.values())
    # Each number queued is digits the file holds: none made up (a keypad's 9 for an X).
    held = {"".join(str(unicodedata.digit(ch)) for ch in phone if ch.isdigit())[-9:] for phone in phones}
    assert {phone[3:] for phone in queued_numbers(accord)} <= held


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_the_progress_bar_counts_lines_whatever_ends_them(tmp_path, ending):
    path = tmp_path / "contacts.csv"
    path.write_bytes(ending.join([b"telephone", b"0612980001", b"0612980002", b""]))
    assert count_lines(path) == 3
