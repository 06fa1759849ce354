"""Read a contacts CSV as a stream: check its columns first, then yield one row at a time."""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

CHUNK = 1 << 20
EXCEL_SEPARATOR = re.compile(r"sep=([^\"\r\n])", re.IGNORECASE)  # a first line Excel writes and reads: "sep=;"
# Canonical column -> the header spellings operators and brokers use (folded, see `fold`).
COLUMNS: dict[str, frozenset[str]] = {
    "phone": frozenset({"phone", "telephone", "tel", "mobile", "portable", "numero", "msisdn",
                        "phone_number", "numero_de_telephone", "num_tel", "gsm", "cell",
                        "n_de_telephone", "no_de_telephone", "numero_telephone", "telephone_portable",
                        "tel_portable", "numero_de_portable", "mobile_phone", "cell_phone"}),
    "first_name": frozenset({"first_name", "firstname", "prenom", "given_name"}),
    "last_name": frozenset({"last_name", "lastname", "nom", "nom_de_famille", "family_name", "surname",
                            "name", "full_name", "nom_prenom", "prenom_nom", "nom_et_prenom", "nom_complet"}),
    "commune": frozenset({"commune", "ville", "city", "town", "localite"}),
    "postcode": frozenset({"postcode", "code_postal", "cp", "zip", "zipcode", "postal_code"}),
    "polling_station": frozenset({"polling_station", "bureau", "bureau_de_vote", "bdv"}),
    "age_band": frozenset({"age_band", "tranche_age", "tranche_d_age", "age_range", "tranche"}),
    "sex": frozenset({"sex", "sexe", "genre", "gender", "civilite"}),
}
ALIASES = {alias: name for name, aliases in COLUMNS.items() for alias in aliases}
# GDPR art. 9 special categories and their usual proxies (COMPLIANCE.md C.11).
SENSITIVE = re.compile(
    r"relig|confess|culte|croyance|faith|origin|ethni|race|racial|nationalit|naissance|birth|natal"
    r"|opinion|politi|vote_pour|sympath|sante|health|medic|maladie|handicap|disab|sexual"
    r"|orientation|syndic|union|casier|criminal|condamn|consonance|patronym|langue_mat|immigr"
)


class ContactsError(ValueError):
    """A contacts file refused as a whole; the message names the file, the column or line, and why."""


class Row(NamedTuple):  # a tuple: a million of them are built per large import
    """One data line: its line number in the file, the raw phone, and the postcode if given."""

    line: int
    phone: str
    postcode: str


@dataclass(frozen=True)
class Header:
    """What the header says: the file's encoding and separator, and where the used columns are."""

    encoding: str
    delimiter: str
    columns: tuple[str, ...]  # canonical names, in file order
    phone: int
    postcode: int | None
    lines: int = 1  # before the first row: the header, after Excel's "sep=;" line if there is one


def fold(name: str) -> str:
    """Fold a header name: no accents, lower case, words joined by '_'."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def sniff_encoding(path: Path) -> str:
    """Return the first of UTF-8, Windows-1252 and Latin-1 (which always fits) that decodes the whole file."""
    for encoding in ("utf-8-sig", "cp1252"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as file:
                while chunk := file.read(CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        except OSError as error:
            raise ContactsError(f"{path}: cannot be read ({error.strerror})") from error
        return encoding
    return "latin-1"


def read_header(path: Path) -> Header:
    """Check the header: a phone column, only allowed columns, nothing sensitive."""
    encoding = sniff_encoding(path)
    with path.open(encoding=encoding, newline="") as file:
        first = file.readline()
        # A UTF-8 byte-order mark survives in a file that had to be read as Windows-1252.
        first = first.removeprefix("\ufeff").removeprefix("\u00ef\u00bb\u00bf")
        said = EXCEL_SEPARATOR.fullmatch(first.rstrip("\r\n"))
        if said:  # Excel's "sep=;" line names the separator; the header follows it
            first = file.readline()
    if not first.strip():
        raise ContactsError(f"{path}: the first line must be a header naming the columns (phone, ...)")
    candidates = []
    for separator in said[1] if said else ";,\t":
        try:
            candidates.append((separator, next(csv.reader([first], delimiter=separator, strict=True))))
        except csv.Error:  # an unclosed quote, a field past csv's limit: not with this separator
            continue
    if not candidates:
        raise ContactsError(f"{path}: line {2 if said else 1}: the header cannot be read as CSV (an unclosed quote, "
                            "or a field of more than 131,072 characters)")
    delimiter, names = max(candidates, key=lambda found: (_has_phone(found[1]), len(found[1])))
    folded = [fold(name) for name in names]
    for raw, name in zip(names, folded, strict=True):
        if SENSITIVE.search(name) and name not in ALIASES:
            raise ContactsError(
                f"{path}: column {raw.strip()!r} holds a special category of personal data; files "
                "carrying religion, origin, nationality, birthplace, opinions, health or similar "
                "are refused before anything is stored (COMPLIANCE.md C.11, GDPR art. 9)")
    # A name in another script (Религия, 宗教) folds to nothing: unknown, like any other, not a blank column.
    unknown = [raw.strip() for raw, name in zip(names, folded, strict=True)
               if name not in ALIASES and (name or _visible(raw))]
    if unknown:
        allowed = ", ".join(COLUMNS)
        garbled = ("" if encoding == "utf-8-sig" else f"; the file is not all UTF-8, so it was read as {encoding}: "
                   "if these names look garbled, save it as UTF-8")
        raise ContactsError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))}; allowed: {allowed}{garbled}")
    columns = tuple(ALIASES.get(name, "") for name in folded)
    if "phone" not in columns:
        raise ContactsError(f"{path}: no phone column; name it one of {', '.join(sorted(COLUMNS['phone']))}")
    for column in dict.fromkeys(c for c in columns if c and columns.count(c) > 1):
        same = [raw.strip() for raw, c in zip(names, columns, strict=True) if c == column]
        raise ContactsError(f"{path}: columns {', '.join(map(repr, same))} all hold the {column}; keep one")
    postcode = columns.index("postcode") if "postcode" in columns else None
    return Header(encoding, delimiter, columns, columns.index("phone"), postcode, 2 if said else 1)


def _visible(name: str) -> bool:
    """Say whether a header name shows anything: not blank, not control characters alone."""
    return bool(name.strip()) and name.strip().isprintable()


def _has_phone(names: list[str]) -> bool:
    return any(ALIASES.get(fold(name)) == "phone" for name in names)


def read_rows(path: Path, header: Header) -> Iterator[Row | tuple[int, str]]:
    """Yield each data row, or (line, reason) for a line the CSV parser cannot read.

    Rows are read by a plain `for` over the reader, the cheapest way through csv: a parse error
    ends that loop, is reported, and the next loop goes on from the line after.
    The header is skipped as `read_header` read it, physical lines: read as CSV, a quote after
    a byte-order mark could run it on over the first rows.
    """
    column, postcode_column, skipped = header.phone, header.postcode, header.lines
    with path.open(encoding=header.encoding, newline="", errors="replace") as file:
        for _ in range(skipped):
            file.readline()
        reader = csv.reader(file, delimiter=header.delimiter, strict=True)
        end = skipped  # the last line read so far; the reader counts from the line after the header
        while True:
            try:
                for fields in reader:
                    line, end = end + 1, reader.line_num + skipped
                    try:
                        phone = fields[column]
                    except IndexError:
                        yield line, (f"only {len(fields)} field(s): no value in the phone column"
                                     if any(field.strip() for field in fields) else "empty line")
                        continue
                    if not phone.strip():
                        yield line, "no phone number" if any(field.strip() for field in fields) else "empty line"
                        continue
                    postcode = ""
                    if postcode_column is not None and postcode_column < len(fields):
                        postcode = fields[postcode_column].strip()
                    yield tuple.__new__(Row, (line, phone, postcode))  # Row(...) without its Python-level __new__
                return
            except csv.Error as error:  # an over-long field or broken quoting: say which lines
                line, end = end + 1, max(end + 1, reader.line_num + skipped)
                span = f"lines {line}-{end}" if end > line else f"line {line}"
                yield line, f"unreadable CSV on {span} ({error})"
