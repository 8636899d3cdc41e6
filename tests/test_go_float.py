"""Reported values are read as Go's ``strconv.ParseFloat`` reads them: cases from its grammar
(number literals with ``_`` between digits, hexadecimal mantissas with a binary exponent, and
the names it gives values that are not finite)."""

import math

import pytest

from functions.core.go_float import parse_float

NUMBERS = {
    "1": 1.0, "-2.5": -2.5, "+.5e-3": 0.0005, "1.": 1.0, "1_000": 1000.0, "1_2.5_0e1_0": 12.5e10,
    "0_1": 1.0, "0x1.8p1": 3.0, "0X.8P0": 0.5, "0x_1p-2": 0.25, "-0x1p0": -1.0, "1e400": math.inf,
    "-0x1p2000": -math.inf, "Inf": math.inf, "-infinity": -math.inf, "+INF": math.inf,
}
NOT_NUMBERS = [
    "", ".", "+", "1e", "1e_5", "_1", "1_", "1__0", "1_.5", "1._5", "1_e5", "0x1", "0x.p1", "0x1_p0",
    "0x_.8p0", " 1", "1 ", "\u0661", "-nan", "+nan", "nan1", "infin", "1,5", "0b101", "1e1.5", "\u0131nf", "\u0130nf",
]


@pytest.mark.parametrize(("text", "value"), NUMBERS.items())
def test_go_numbers_are_read(text, value):
    assert parse_float(text) == value


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_what_go_refuses_is_no_number(text):
    assert parse_float(text) is None


def test_nan_is_read_in_any_case_but_unsigned():
    assert all(math.isnan(parse_float(text)) for text in ("nan", "NaN", "NAN"))
