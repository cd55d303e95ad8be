"""Date arithmetic for understood phrases: months, seasons by hemisphere, holidays, weeks.

Conventions (one each, stated so phrase tables can be checked by hand):
- seasons are astronomical, rounded to fixed days: spring 20 Mar–20 Jun, summer 21 Jun–22 Sep,
  autumn 23 Sep–20 Dec, winter 21 Dec–19 Mar, in the northern hemisphere; the southern one
  swaps summer↔winter and spring↔autumn. A season "of year Y" is the one that starts in Y, so
  "winter 2019" is 21 Dec 2019–19 Mar 2020.
- weeks run Monday to Sunday; a named period ("last month", "two years ago") is whole.
- a month, season or holiday without a year is its latest occurrence that has begun; with
  "last" it is the latest that has ended.
"""

from __future__ import annotations

from datetime import date, timedelta

Range = tuple[date | None, date | None]
_NORTH = {
    "spring": ((3, 20), (6, 20), 0),
    "summer": ((6, 21), (9, 22), 0),
    "autumn": ((9, 23), (12, 20), 0),
    "winter": ((12, 21), (3, 19), 1),  # ends the next year
}
_OPPOSITE = {"spring": "autumn", "summer": "winter", "autumn": "spring", "winter": "summer"}


def month_range(year: int, month: int) -> Range:
    end = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return date(year, month, 1), end


def year_range(first: int, last: int | None = None) -> Range:
    return date(first, 1, 1), date(last or first, 12, 31)


def season_range(season: str, year: int, south: bool = False) -> Range:
    (m1, d1), (m2, d2), wraps = _NORTH[_OPPOSITE[season] if south else season]
    return date(year, m1, d1), date(year + wraps, m2, d2)


def easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


def holiday_range(name: str, year: int) -> Range:
    if name == "easter":  # Good Friday to Easter Monday
        sunday = easter(year)
        return sunday - timedelta(days=2), sunday + timedelta(days=1)
    if name == "thanksgiving":  # the fourth Thursday of November (US)
        first = date(year, 11, 1)
        day = first + timedelta(days=(3 - first.weekday()) % 7 + 21)
        return day, day
    (m1, d1), (m2, d2) = HOLIDAYS[name]
    return date(year, m1, d1), date(year, m2, d2)


HOLIDAYS = {
    "christmas": ((12, 24), (12, 26)),
    "christmas eve": ((12, 24), (12, 24)),
    "christmas day": ((12, 25), (12, 25)),
    "new year's eve": ((12, 31), (12, 31)),
    "new year's day": ((1, 1), (1, 1)),
    "halloween": ((10, 31), (10, 31)),
    "valentine's day": ((2, 14), (2, 14)),
    "easter": None,
    "thanksgiving": None,
}


def latest(make, today: date, *, ended: bool) -> Range:
    """The latest yearly occurrence ``make(year)`` that has begun (or, ``ended``, finished)."""
    for year in (today.year + 1, today.year, today.year - 1, today.year - 2):
        start, end = make(year)
        if (end < today) if ended else (start <= today):
            return start, end
    raise AssertionError("a yearly occurrence within three years")  # pragma: no cover


def this_season(season: str, today: date, south: bool) -> Range:
    """The season of the current year; for the one spanning New Year, the one around now."""
    wraps = _NORTH[_OPPOSITE[season] if south else season][2]
    year = today.year - 1 if wraps and today.month <= 6 else today.year
    return season_range(season, year, south)


def week_range(day: date) -> Range:
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def shift_months(day: date, months: int) -> date:
    """The same day ``months`` earlier (clamped to the month's end)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    last = month_range(year, month + 1)[1].day
    return date(year, month + 1, min(day.day, last))


def units_ago(unit: str, count: int, today: date) -> Range:
    """The whole day, week, month or year ``count`` units before today's."""
    if unit == "day":
        day = today - timedelta(days=count)
        return day, day
    if unit == "week":
        return week_range(today - timedelta(weeks=count))
    if unit == "month":
        earlier = shift_months(today.replace(day=1), count)
        return month_range(earlier.year, earlier.month)
    return year_range(today.year - count)


def rolling(unit: str, count: int, today: date) -> Range:
    """The last ``count`` units up to today inclusive: "the last 7 days", "past 3 months"."""
    if unit == "day":
        return today - timedelta(days=count - 1), today
    if unit == "week":
        return today - timedelta(days=7 * count - 1), today
    months = count * (12 if unit == "year" else 1)
    return shift_months(today, months) + timedelta(days=1), today
