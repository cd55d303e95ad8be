"""Date words → ranges: years, months, days, seasons, holidays, relative periods, and ranges.

Rules, not a general parser: each matcher reads a few words at one position and says how many
it used. A year or month that only looks like a date stays text ("a 1975 poster", "may
flowers"); seasons and holidays need a sign of time (a year, "last", "in", "at") since alone
they are mostly things ("spring flowers", "christmas tree"). dateparser 1.5.0 (BSD) was tried
and not used: ~1.6 ms a call (measured on a loaded 2-core machine) against ~0.15 ms for a whole
query here, it returns one instant rather than a range, reads "may" as May and "a day" as
yesterday, and does not know "last summer" or "spring".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from retrieval.understand import calendar as cal
from retrieval.understand.tokens import (
    ABBREVIATED_MONTHS,
    AMBIGUOUS_MONTHS,
    DETERMINERS,
    MONTHS,
    NUMBER_WORDS,
    SEASONS,
    TAKEN,
    TIME_CUES,
    Token,
)

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_YEAR_SPAN = re.compile(r"^(\d{4})[-–](\d{4})$")
_DAY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
_DECADE = re.compile(r"^(?:(1[89]|20)|')?(\d)0'?s$")
_UNITS = {
    "day": "day",
    "days": "day",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
    "year": "year",
    "years": "year",
}
_RANGE_JOINERS = frozenset(["to", "until", "till", "through", "thru", "-", "–", "and", "or"])
_OPEN = {"since": "since", "after": "after", "before": "before", "until": "until", "till": "until"}
_PARTS = {"early": (1, 4), "mid": (5, 8), "late": (9, 12)}


@dataclass
class Atom:
    start: date | None
    end: date | None
    positions: list[int]


class _Reader:
    def __init__(self, tokens: list[Token], today: date, south: bool) -> None:
        self.tokens, self.today, self.south = tokens, today, south

    def core(self, i: int) -> str:
        if 0 <= i < len(self.tokens) and not self.tokens[i].claimed:
            return self.tokens[i].core
        return ""

    def year(self, i: int) -> int | None:
        word = self.core(i)
        if len(word) == 4 and word.isdigit() and 1900 <= int(word) <= self.today.year:
            return int(word)
        return None

    def holiday(self, i: int) -> tuple[str, int] | None:
        words = [self.core(i + k) for k in range(3)]
        for name in sorted(cal.HOLIDAYS, key=lambda n: -n.count(" ")):  # longest first
            parts = name.split()
            if words[: len(parts)] == parts:
                return name, len(parts)
        if words[0] == "xmas":
            return "christmas", 1
        if words[:2] in (["new", "years"], ["new", "year"]) and words[2] in ("eve", "day"):
            return f"new year's {words[2]}", 3
        if words[:2] in (["valentines", "day"], ["valentine", "day"]):
            return "valentine's day", 2
        return None

    def number(self, i: int) -> int | None:
        word = self.core(i)
        if word.isdigit() and 0 < int(word) < 100:
            return int(word)
        return NUMBER_WORDS.get(word)

    def match(self, i: int) -> tuple[int, cal.Range] | None:
        """(words used, range) for a date expression starting at word ``i``."""
        c, today = self.core, self.today
        word = c(i)
        if not word:
            return None
        if m := _ISO.match(word):
            try:
                day = date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
            return 1, (day, day)
        if (m := _YEAR_SPAN.match(word)) and all(1900 <= int(y) <= today.year for y in m.groups()):
            first, last = sorted((int(m[1]), int(m[2])))
            return 1, cal.year_range(first, last)
        if (m := _DAY.match(word)) and c(i + 1) in MONTHS:  # 21 june (2019)
            return self._day(int(m[1]), MONTHS[c(i + 1)], self.year(i + 2), 2)
        if word in MONTHS:
            month = MONTHS[word]
            if m := _DAY.match(c(i + 1)):  # june 21(,) (2019)
                return self._day(int(m[1]), month, self.year(i + 2), 2)
            if (year := self.year(i + 1)) is not None:
                return 2, cal.month_range(year, month)
            if word not in AMBIGUOUS_MONTHS:  # "july" alone; never "may" or "march"
                return 1, self._latest_month(month, ended=False)
        if word in SEASONS:
            season = SEASONS[word]
            of = 1 if c(i + 1) == "of" else 0
            if (year := self.year(i + 1 + of)) is not None:
                return 2 + of, cal.season_range(season, year, self.south)
        if (found := self.holiday(i)) and (year := self.year(i + found[1])) is not None:
            return found[1] + 1, cal.holiday_range(found[0], year)
        if word in _PARTS and (year := self.year(i + 1)) is not None:
            first, last = _PARTS[word]
            return 2, (date(year, first, 1), cal.month_range(year, last)[1])
        if m := _DECADE.match(word):
            century = int(m[1]) * 100 if m[1] else (2000 if m[2] in "012" else 1900)
            start = century + int(m[2]) * 10
            if m[1] is None and c(i - 1) != "the" or start > today.year:
                return None
            if c(i - 1) in DETERMINERS - {"the"}:
                return None
            return 1, cal.year_range(start, min(start + 9, today.year))
        if (year := self.year(i)) is not None:
            return None if c(i - 1) in DETERMINERS else (1, cal.year_range(year))
        if word == "today":
            return 1, (today, today)
        if word == "yesterday":
            return 1, (today - timedelta(days=1),) * 2
        if word in ("this", "last", "past", "previous") and (found := self._relative(i)):
            return found
        if (
            (n := self.number(i)) is not None
            and (unit := _UNITS.get(c(i + 1)))
            and c(i + 2) == "ago"
        ):
            return 3, cal.units_ago(unit, n, today)
        if word in TIME_CUES:
            return self._cued(i)
        return None

    def _day(self, day: int, month: int, year: int | None, used: int):
        try:
            if year is not None:
                found = date(year, month, day)
                return used + 1, (found, found)
            found = cal.latest(lambda y: (date(y, month, day),) * 2, self.today, ended=False)
            return used, found
        except ValueError:  # 30 February
            return None

    def _latest_month(self, month: int, *, ended: bool) -> cal.Range:
        return cal.latest(lambda y: cal.month_range(y, month), self.today, ended=ended)

    def _relative(self, i: int):
        c, today, word = self.core, self.today, self.core(i)
        nxt = c(i + 1)
        if (
            word in ("last", "past")
            and (n := self.number(i + 1))
            and (unit := _UNITS.get(c(i + 2)))
        ):
            return 3, cal.rolling(unit, n, today)
        unit = _UNITS.get(nxt)
        if unit and nxt == unit:  # singular: "last week", "this year", "past month"
            if word == "past":
                return 2, cal.rolling(unit, 1, today)
            return 2, cal.units_ago(unit, 0 if word == "this" else 1, today)
        if nxt == "weekend":
            saturday = cal.week_range(today)[0] + timedelta(days=5)
            if word != "this" and saturday + timedelta(days=1) >= today:  # not over yet
                saturday -= timedelta(days=7)
            return 2, (saturday, saturday + timedelta(days=1))
        if word == "past":
            return None
        ended = word != "this"
        if nxt in SEASONS:
            season = SEASONS[nxt]
            if word == "this":
                return 2, cal.this_season(season, today, self.south)
            make = lambda y: cal.season_range(season, y, self.south)  # noqa: E731
            return 2, cal.latest(make, today, ended=True)
        if nxt in MONTHS:
            month = MONTHS[nxt]
            if word == "this":
                return 2, cal.month_range(today.year, month)
            return 2, self._latest_month(month, ended=ended)
        if found := self.holiday(i + 1):
            name, used = found
            if word == "this":
                return used + 1, cal.holiday_range(name, today.year)
            return used + 1, cal.latest(lambda y: cal.holiday_range(name, y), today, ended=True)
        return None

    def _cued(self, i: int):
        """ "in march", "during the summer", "at christmas": the cue makes the word a time."""
        c, today = self.core, self.today
        the = 1 if c(i + 1) == "the" else 0
        word = c(i + 1 + the)
        if word in MONTHS and word not in ABBREVIATED_MONTHS and not self.year(i + 2 + the):
            if _DAY.match(c(i + 2 + the)):
                return None  # "in june 21": the day matcher reads it from the month
            return 2 + the, self._latest_month(MONTHS[word], ended=False)
        if word in SEASONS and not self.year(i + 2 + the) and c(i + 2 + the) != "of":
            season = SEASONS[word]
            make = lambda y: cal.season_range(season, y, self.south)  # noqa: E731
            return 2 + the, cal.latest(make, today, ended=False)
        if c(i) in ("at", "on", "over", "during", "for", "in") and (
            found := self.holiday(i + 1 + the)
        ):
            name, used = found
            if self.year(i + 1 + the + used) is not None:
                return None
            make = lambda y: cal.holiday_range(name, y)  # noqa: E731
            return 1 + the + used, cal.latest(make, today, ended=False)
        return None


def find_dates(tokens: list[Token], today: date, south: bool = False) -> list[Atom]:
    """Date expressions in unclaimed tokens, with ranges, open ends and their lead words.

    Marks the tokens it uses as claimed and returns one ``Atom`` per date filter.
    """
    reader = _Reader(tokens, today, south)
    atoms: list[Atom] = []
    i = 0
    while i < len(tokens):
        found = reader.match(i)
        if found is None:
            i += 1
            continue
        used, (start, end) = found
        atoms.append(Atom(start, end, list(range(i, i + used))))
        for k in range(i, i + used):
            tokens[k].claimed = True
        i += used
    atoms = _join_ranges(tokens, atoms)
    for atom in atoms:
        _open_ends_and_leads(tokens, atom, today)
    return atoms


def _join_ranges(tokens: list[Token], atoms: list[Atom]) -> list[Atom]:
    """ "from 2017 to 2019", "between 2015 and 2016", "october 2018 - december 2018"."""
    joined: list[Atom] = []
    for atom in atoms:
        if joined:
            before = joined[-1]
            gap = list(range(before.positions[-1] + 1, atom.positions[0]))
            if (
                len(gap) == 1
                and not tokens[gap[0]].claimed
                and tokens[gap[0]].core in _RANGE_JOINERS
            ):
                starts = [d for d in (before.start, atom.start) if d]
                ends = [d for d in (before.end, atom.end) if d]
                tokens[gap[0]].claimed = True
                joined[-1] = Atom(
                    min(starts) if starts else None,
                    max(ends) if ends else None,
                    before.positions + gap + atom.positions,
                )
                continue
        joined.append(atom)
    return joined


def _open_ends_and_leads(tokens: list[Token], atom: Atom, today: date) -> None:
    """Absorb the words before a date: "since"/"before"... (open ends), cues, "the", "taken"."""

    def prev() -> Token | None:
        k = atom.positions[0] - 1
        return tokens[k] if k >= 0 and not tokens[k].claimed else None

    token = prev()
    if token is not None and token.core in _OPEN:
        kind = _OPEN[token.core]
        if kind == "since":
            atom.end = today
        elif kind == "after":
            atom.start, atom.end = atom.end + timedelta(days=1), today
        elif kind == "before":
            atom.start, atom.end = None, atom.start - timedelta(days=1)
        else:
            atom.start = None
        _take(token, atom)
    else:
        if token is not None and token.core == "the":  # "from the 90s", "the 1990s"
            k = atom.positions[0] - 2
            if k < 0 or (not tokens[k].claimed and tokens[k].core in TIME_CUES | {"between"}):
                _take(token, atom)
        token = prev()
        if token is not None and token.core in TIME_CUES | {"between"} and token.core != "of":
            _take(token, atom)
    token = prev()
    if token is not None and token.core in TAKEN:
        _take(token, atom)


def _take(token: Token, atom: Atom) -> None:
    token.claimed = True
    atom.positions.insert(0, token.index)
