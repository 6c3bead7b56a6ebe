"""CSV files an instructor opens in a spreadsheet: no cell a student wrote can start a formula.

Student ids come from folder names under `submitted/` and names from the LMS roster, so a student can
choose them. OWASP's rule for CSV injection: a cell that begins with `=`, `+`, `-`, `@`, a tab or a
carriage return is prefixed with a single quote, which spreadsheets show as text. Numbers are written
as numbers, so a score never gains a quote.
"""

import csv

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(value):
    "`value` as a spreadsheet shows it as text (numbers unchanged)."
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def write_rows(path, header: list, rows: list, encoding: str = "utf-8") -> None:
    "Write `rows` (lists) under `header`, every cell made safe."
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        for row in [header, *rows]:
            writer.writerow([safe(v) for v in row])
