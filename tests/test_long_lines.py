"""Lines longer than a reader holds arrive in pieces, each parsed as a line: a piece ends where
it splits no ``name=value``, so a value on an overlong line is read whole or not at all, never
as a different one; and output with no line break is searched only where it grew."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import run_study

from functions.core import lines
from functions.core.lines import CUT_SLACK, MAX_LINE, bounded_lines
from functions.core.metrics import parse_text


def _pieces(data: bytes, chunk: int = 4096) -> list[str]:
    return list(bounded_lines(data[i:i + chunk] for i in range(0, len(data), chunk)))


def _values(data: bytes) -> list[float]:
    return [o.value for o in parse_text(_pieces(data), ["acc"])]


def test_a_value_where_an_overlong_line_is_cut_is_read_whole_or_not_at_all():
    for before in range(MAX_LINE - 12, MAX_LINE + 4):
        assert _values(b"x" * before + b" acc=0.95 loss=1\n") == [0.95], before
        assert _values(b"x" * before + b",acc=0.95\n") == [0.95], before
        assert _values(b"x" * before + b"=acc=0.95\n") in ([0.95], []), before
        assert _values(b"x" * 100 + b"acc=0.9" + b"5" * before + b"\n") == [], "no metric named x...acc"
    assert all(len(piece.rstrip("\n")) <= MAX_LINE for piece in _pieces(b"x" * 3 * MAX_LINE + b"\n"))


def test_a_pair_spaced_around_its_sign_is_not_cut_apart():
    """Katib's rule takes spaces around ``=``, Keras prints ``loss: 0.3``: a cut near such a
    pair falls before its name, which goes with its value."""
    for shift in range(-24, 24):
        spaced = b"m = 0.5 " * (MAX_LINE // 8 + shift // 8) + b"x" * (shift % 8) + b" acc = 0.25 tail\n"
        assert _values(spaced) == [0.25], shift
        keras = _pieces(b"a" * (MAX_LINE - 10 + shift) + b" acc: 0.25\n")
        assert any("acc: 0.25" in piece for piece in keras), shift
    for before in range(MAX_LINE - 12, MAX_LINE + 4):
        assert [o.value for o in parse_text(_pieces(b"x" * before + b" acc=0.9loss=0.3\n"), ["acc", "loss"])] \
            == [0.9, 0.3], "a value run together with the next name is not taken for a name"
    assert len(_pieces(b"x" * (MAX_LINE - CUT_SLACK) + b" " + b"x" * MAX_LINE)[0]) == MAX_LINE - CUT_SLACK + 1


def test_a_trial_whose_value_straddles_the_cut_of_its_overlong_line_is_scored_by_it(embedded, tmp_path: Path):
    program = f"import sys; print('x' * ({MAX_LINE} - int(sys.argv[1])) + ' acc=0.95')"
    definition = {"name": "long", "objective": {"metric": "acc", "direction": "maximize"},
                  "parameters": [{"name": "short", "type": "categorical", "values": [4, 6, 8]}],
                  "algorithm": {"name": "grid"}, "maxTrials": 3,
                  "trialTemplate": {"command": [sys.executable, "-c", program, "${trialParameters.short}"]}}
    run_study(embedded, definition, tmp_path)
    assert [(t.state, t.values) for t in embedded.store.trials("long")] == [("COMPLETE", [0.95])] * 3


class _Counting:
    """The line-break pattern, counting the characters each search may look at."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern, self.searched = pattern, 0

    def search(self, text: str, pos: int, endpos: int) -> re.Match[str] | None:
        self.searched += min(endpos, len(text)) - pos
        return self.pattern.search(text, pos, endpos)


def test_output_without_line_breaks_is_searched_once(monkeypatch):
    counting = _Counting(lines._BREAK)
    monkeypatch.setattr(lines, "_BREAK", counting)
    data = b"z" * (1 << 20)
    assert sum(len(piece) for piece in _pieces(data, 1024)) == len(data)
    assert counting.searched <= 2 * len(data)
