"""Write a broker-like contacts file for the pipeline benchmark, and say what it holds.

Mostly French mobiles in the formats operators type (06 12 34 56 78, +33 6..., 0033 6...,
6.12.34.56.78, 06-12-34-56-78 ...), about 5% repeats of an earlier number in another format,
3% landlines, 1% garbage and a few foreign mobiles; `;`-separated, UTF-8, accents in names.
"""

from __future__ import annotations

import random
from array import array
from collections import Counter
from pathlib import Path

HEADER = "telephone;prenom;commune;code_postal"
# Share of rows of each kind; the rest are new French mobiles.
DUPLICATE, LANDLINE, GARBAGE, FOREIGN = 0.05, 0.03, 0.01, 0.001
# Ranges libphonenumber holds valid for metropolitan mobiles (06 3x and 06 9x are partly overseas).
MOBILE_PREFIXES = tuple(f"6{d}" for d in "01245678") + tuple(f"7{d}" for d in "345678")
FORMATS = (  # (weight, how a 9-digit national number 612345678 is written)
    (35, lambda d: f"0{d[0]} {d[1:3]} {d[3:5]} {d[5:7]} {d[7:]}"),
    (25, lambda d: f"0{d}"),
    (10, lambda d: f"+33 {d[0]} {d[1:3]} {d[3:5]} {d[5:7]} {d[7:]}"),
    (15, lambda d: f"+33{d}"),
    (5, lambda d: f"0033 {d[0]} {d[1:3]} {d[3:5]} {d[5:7]} {d[7:]}"),
    (5, lambda d: f"{d[0]}.{d[1:3]}.{d[3:5]}.{d[5:7]}.{d[7:]}"),
    (5, lambda d: f"0{d[0]}-{d[1:3]}-{d[3:5]}-{d[5:7]}-{d[7:]}"),
)
GARBAGE_VALUES = ("", "n/a", "NC", "inconnu", "0", "06", "06 12 34", "tel", "jean.dupont@example.fr",
                  "12/03/1985", "06 12 34 56 78 90", "+33", "?", "voir fiche")
FOREIGN_VALUES = ("+44 7911 123456", "+32 470 12 34 56", "+41 79 123 45 67", "+49 1512 3456789",
                  "+34 612 34 56 78", "+262 692 12 34 56", "+689 87 12 34 56")
PLACES = (  # (weight, commune, postcodes): Alsace and Moselle have their own holidays
    (10, "Strasbourg", ("67000", "67100", "67200")), (3, "Sélestat", ("67600",)), (3, "Haguenau", ("67500",)),
    (4, "Mulhouse", ("68100", "68200")), (4, "Metz", ("57000", "57050")), (12, "Paris", ("75011", "75018")),
    (8, "Lyon", ("69003", "69007")), (6, "Marseille", ("13001", "13008")), (5, "Toulouse", ("31000",)),
    (5, "Bordeaux", ("33000",)), (5, "Nantes", ("44000",)), (5, "Lille", ("59000",)), (4, "Évry", ("91000",)),
    (4, "Besançon", ("25000",)), (10, "", ("",)),
)
FIRST_NAMES = ("Camille", "Dominique", "Zoé", "Chloé", "Noël", "Léa", "Hélène", "Jean", "Marie", "Sacha",
               "Amélie", "François", "Inès", "Mohamed", "Thérèse", "Loïc", "Anaïs", "Jérôme", "", "Émile")


def write_contacts(path: Path, rows: int, *, seed: int = 1) -> Counter[str]:
    """Write `rows` data lines to `path`; return how many are new mobiles, duplicates, landlines ..."""
    rng = random.Random(seed)
    formats = [f for _, f in FORMATS]
    format_weights = [w for w, _ in FORMATS]
    places = [(commune, codes) for _, commune, codes in PLACES]
    place_weights = [w for w, _, _ in PLACES]
    taken = bytearray(25_000_000)  # one bit per 06/07 number, so every "new" mobile is new
    written = array("q")  # national numbers written so far, for duplicates
    kinds: Counter[str] = Counter()
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(HEADER + "\r\n")
        lines = []
        for _ in range(rows):
            draw = rng.random()
            if draw < GARBAGE:
                kind, phone = "garbage", rng.choice(GARBAGE_VALUES)
            elif draw < GARBAGE + LANDLINE:
                digits = f"{rng.choice('123459')}{rng.randrange(10**8):08d}"
                kind, phone = "landline", rng.choices(formats, format_weights)[0](digits)
            elif draw < GARBAGE + LANDLINE + FOREIGN:
                kind, phone = "foreign", rng.choice(FOREIGN_VALUES)
            elif draw < GARBAGE + LANDLINE + FOREIGN + DUPLICATE and written:
                digits = str(written[rng.randrange(len(written))])
                kind, phone = "duplicate", rng.choices(formats, format_weights)[0](digits)
            else:
                while True:
                    number = int(rng.choice(MOBILE_PREFIXES)) * 10**7 + rng.randrange(10**7)
                    offset = number - 600_000_000
                    if not taken[offset >> 3] & (1 << (offset & 7)):
                        taken[offset >> 3] |= 1 << (offset & 7)
                        break
                written.append(number)
                kind, phone = "mobile", rng.choices(formats, format_weights)[0](str(number))
            commune, codes = rng.choices(places, place_weights)[0]
            lines.append(f"{phone};{rng.choice(FIRST_NAMES)};{commune};{rng.choice(codes)}\r\n")
            kinds[kind] += 1
            if len(lines) == 10_000:
                file.writelines(lines)
                lines = []
        file.writelines(lines)
    return kinds
