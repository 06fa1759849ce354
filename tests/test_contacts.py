"""Contacts files as brokers and operators really send them: every line accounted for, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.contacts import ContactsError, Row, read_header, read_rows


def write(tmp_path: Path, content: str | bytes, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def rows(path: Path) -> list[Row | tuple[int, str]]:
    return list(read_rows(path, read_header(path)))


@pytest.mark.parametrize("column", ["religion", "Confession", "Origine", "origine_ethnique", "Nationalité",
                                    "lieu de naissance", "Pays de naissance", "opinion_politique", "santé",
                                    "Orientation sexuelle", "syndicat", "consonance_nom"])
def test_a_special_category_column_refuses_the_whole_file(tmp_path, column):
    path = write(tmp_path, f"telephone;{column}\n0612980001;x\n")
    with pytest.raises(ContactsError) as refused:
        read_header(path)
    assert repr(column) in str(refused.value) and "C.11" in str(refused.value)


def test_unknown_columns_are_refused_and_listed(tmp_path):
    path = write(tmp_path, "telephone;email;revenu\n0612980001;a@b.fr;1\n")
    with pytest.raises(ContactsError, match="unknown column.*'email', 'revenu'"):
        read_header(path)


def test_two_phone_columns_are_refused_rather_than_guessed(tmp_path):
    path = write(tmp_path, "telephone;portable\n0145678910;0612980001\n")
    with pytest.raises(ContactsError, match="'telephone', 'portable' all hold the phone"):
        read_header(path)


@pytest.mark.parametrize("header, delimiter", [
    ("telephone;prenom;commune", ";"), ("Téléphone,Prénom,Code postal", ","), ("msisdn\tsexe", "\t"),
    ('"Nom, prénom";telephone', ";"), ("\ufeffPortable;CP", ";"), ("N° de téléphone;Prénom", ";"),
    ("Téléphone portable,Ville", ","),
])
def test_usual_headers_and_separators_are_understood(tmp_path, header, delimiter):
    found = read_header(write(tmp_path, header + "\n"))
    assert found.delimiter == delimiter and found.columns[found.phone] == "phone"


def test_a_windows_1252_file_keeps_its_lines(tmp_path):
    content = "nom;telephone\nDupont…;0612980001\nMartin;0612980002\n".encode("cp1252")
    path = write(tmp_path, content)
    assert read_header(path).encoding == "cp1252"
    assert rows(path) == [Row(2, "0612980001", ""), Row(3, "0612980002", "")]


def test_a_bom_and_a_stray_latin1_byte_still_find_the_phone_column(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbftelephone;commune\n0612980001;B\xe9ziers\n")
    assert rows(path) == [Row(2, "0612980001", "")]


def test_a_stray_quote_is_reported_with_the_lines_it_swallowed(tmp_path):
    path = write(tmp_path, 'nom;telephone\n"Bebert Dupont;0612980001\nMartin;0612980002\nDurand;0612980003\n')
    (rejected,) = rows(path)
    assert rejected[0] == 2 and "lines 2-4" in rejected[1]


def test_line_numbers_stay_right_after_a_quoted_newline(tmp_path):
    path = write(tmp_path, 'nom;telephone;cp\n"Dupont\nJean";0612980001;67000\nMartin;0612980002;75001\n')
    assert rows(path) == [Row(2, "0612980001", "67000"), Row(4, "0612980002", "75001")]


def test_short_rows_and_blank_lines_are_counted_with_a_reason(tmp_path):
    path = write(tmp_path, "nom;commune;telephone\nDupont;Lyon\n\nMartin;Lille;0612980002\n")
    assert rows(path) == [(2, "only 2 field(s): no value in the phone column"), (3, "empty line"),
                          Row(4, "0612980002", "")]


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(ContactsError, match="header"):
        read_header(write(tmp_path, ""))
