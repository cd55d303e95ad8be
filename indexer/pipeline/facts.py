"""Places for the committed rows, and the facts of photos indexed before they were kept.

The decoders read each photo's EXIF facts (``decode.photo_facts``); the committing side adds
the nearest city, its region and country (``Placer``): one KD-tree query per batch, on one
``ReverseGeocoder`` per run, built only when a batch first has a position — loading the
shipped cities takes seconds, which a library without GPS never pays. ``backfill_facts``
brings rows indexed before these columns existed (or by an older reading, ``FACTS_VERSION``)
up to date on the next run: their EXIF is read again, never their pixels, and nothing is
re-embedded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from indexer.decode.photo_facts import FACTS_VERSION, read_photo_facts
from indexer.pipeline.reports import IndexReport
from indexer.places import ReverseGeocoder
from indexer.places.gazetteer import PlacesError
from indexer.store.facts import facts_todo, write_facts
from indexer.store.metadata import MetadataStore

log = logging.getLogger(__name__)

BACKFILL_PAGE = 500  # rows read, placed and written per transaction
_NO_PLACE = {"city": None, "region_code": None, "country_code": None, "place_geonameid": None}


class Placer:
    """Adds places to rows of decoded facts, a batch at a time (one thread at a time)."""

    def __init__(self, geocoder: Callable[[], ReverseGeocoder] | None = None) -> None:
        """``geocoder``: what builds the run's geocoder (default: ``ReverseGeocoder()``)."""
        self._make = geocoder
        self._geocoder: ReverseGeocoder | None = None
        self._unavailable = False
        self.load_seconds = 0.0  # building the geocoder (wall clock), once per run at most
        self.lookup_seconds = 0.0  # the batches' nearest-city queries (wall clock)
        self.located = 0  # rows given a place

    @property
    def loaded(self) -> bool:
        return self._geocoder is not None

    def place(self, rows: list[dict]) -> None:
        """Set each row's place columns (from its ``latitude``/``longitude``, None without)
        and its ``facts_version``: every row given here has had its facts read."""
        located = []
        for row in rows:
            row.update(_NO_PLACE, facts_version=FACTS_VERSION)
            if row.get("latitude") is not None and row.get("longitude") is not None:
                located.append(row)
        geocoder = self._load() if located else None
        if geocoder is None:
            for row in located:  # no places this run: the next run's backfill tries again
                row["facts_version"] = None
            return
        started = time.perf_counter()
        found = geocoder.nearest_many([(row["latitude"], row["longitude"]) for row in located])
        for row, hit in zip(located, found, strict=True):
            if hit is not None:
                place = hit[0]
                row.update(
                    city=place.name,
                    region_code=place.region_code or None,
                    country_code=place.country_code or None,
                    place_geonameid=place.geonameid,
                )
                self.located += 1
        self.lookup_seconds += time.perf_counter() - started

    def report(self, report: IndexReport) -> None:
        """Add this run's places figures to its report."""
        report.located += self.located
        report.places_seconds += self.load_seconds + self.lookup_seconds

    def _load(self) -> ReverseGeocoder | None:
        if self._geocoder is None and not self._unavailable:
            started = time.perf_counter()
            try:
                self._geocoder = (self._make or ReverseGeocoder)()
            except PlacesError as exc:  # an installation fault: the photos still get indexed
                log.warning("photos are indexed without places: %s", exc)
                self._unavailable = True
            self.load_seconds += time.perf_counter() - started
        return self._geocoder


def backfill_facts(
    store: MetadataStore, photos: Path, placer: Placer, page: int = BACKFILL_PAGE
) -> int:
    """Read the EXIF facts of indexed rows that lack this version's (no pixels decoded), add
    their places and store them; returns how many rows were brought up to date."""
    done, after = 0, 0
    while todo := facts_todo(store, FACTS_VERSION, after, page):
        rows = [{"id": i, **read_photo_facts(photos / path).columns()} for i, path in todo]
        for row in rows:
            if row["taken_at"] is None:  # unreadable now: keep the date read when it was indexed
                del row["taken_at"]
        placer.place(rows)
        write_facts(store, rows)
        done += len(rows)
        after = todo[-1][0]
    if done:
        log.info("read the places, cameras and times of %d photos indexed before", done)
    return done
