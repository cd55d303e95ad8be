"""What understanding returns: the remaining text and filters with their source words."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from indexer.places.gazetteer import Place

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Filter:
    """One understood filter and the query words (as typed, in order) it was made of."""

    kind: str  # "date" | "place" | "camera"
    words: tuple[str, ...]
    positions: tuple[int, ...]  # indices of those words in the query's whitespace split
    start: date | None = None  # date: first day taken (inclusive), None = open
    end: date | None = None  # date: last day taken (inclusive), None = open
    place: Place | None = None
    alternatives: tuple[Place, ...] = ()  # other places of the same name, best first
    camera: str | None = None  # lowercase words to find in "make model", case-insensitive

    @property
    def description(self) -> str:
        if self.kind == "date":
            return "taken " + date_range_text(self.start, self.end)
        if self.kind == "place":
            also = f" (also {len(self.alternatives)} other)" if self.alternatives else ""
            return f"in {self.place.label}{also}"
        return f"with {self.camera}"

    def canonical(self) -> str:
        """The compact form phrase tables compare: date:START..END, place:LABEL, camera:WORDS."""
        if self.kind == "date":
            return f"date:{self.start or ''}..{self.end or ''}"
        if self.kind == "place":
            return f"place:{self.place.label}"
        return f"camera:{self.camera}"

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "words": list(self.words), "description": self.description}
        if self.kind == "date":
            out.update(
                start=self.start.isoformat() if self.start else None,
                end=self.end.isoformat() if self.end else None,
            )
        elif self.kind == "place":
            p = self.place
            out.update(
                place_kind=p.kind,
                name=p.name,
                label=p.label,
                country_code=p.country_code,
                region_code=p.region_code,
                latitude=p.latitude,
                longitude=p.longitude,
                radius_km=p.radius_km,
                country_codes=list(p.country_codes),
                alternatives=[a.label for a in self.alternatives],
            )
        else:
            out["camera"] = self.camera
        return out


@dataclass(frozen=True)
class Understood:
    """A query split into the text to embed and the filters its other words meant."""

    query: str
    text: str
    filters: tuple[Filter, ...] = field(default=())

    @property
    def description(self) -> str:
        """One line: "beach · taken 21 Jun–22 Sep 2025 · in Lisbon, Portugal"."""
        return " · ".join([self.text or "(any photo)", *(f.description for f in self.filters)])

    def of_kind(self, kind: str) -> list[Filter]:
        return [f for f in self.filters if f.kind == kind]

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "text": self.text,
            "description": self.description,
            "filters": [f.to_dict() for f in self.filters],
        }


def _day(d: date, year: bool = True) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]}" + (f" {d.year}" if year else "")


def date_range_text(start: date | None, end: date | None) -> str:
    """ "2019", "2017–2019", "Mar 2021", "21 Jun 2019", "21 Jun–22 Sep 2025", "since 1 Jan 2020"."""
    if start is None and end is None:
        return "any time"
    if start is None:
        return f"until {_day(end)}"
    if end is None:
        return f"since {_day(start)}"
    whole_years = (start.month, start.day, end.month, end.day) == (1, 1, 12, 31)
    if whole_years:
        return str(start.year) if start.year == end.year else f"{start.year}–{end.year}"
    if start == end:
        return _day(start)
    next_day = date.fromordinal(end.toordinal() + 1)
    if start.day == 1 and next_day.day == 1 and (start.year, start.month) == (end.year, end.month):
        return f"{_MONTHS[start.month - 1]} {start.year}"
    if start.year == end.year:
        return f"{_day(start, year=False)}–{_day(end)}"
    return f"{_day(start)}–{_day(end)}"
