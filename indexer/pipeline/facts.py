"""Places for the committed rows, and the facts of photos indexed before they were kept.

The decoders read each photo's EXIF facts (``decode.photo_facts``); the committing side adds
the nearest city, its region and country (``Placer``): one KD-tree query per batch, on one
``ReverseGeocoder`` per run, built only when a batch first has a position — loading the
shipped cities takes ~0.7 s (a second or more on a busy machine), which a library without GPS
never pays, and which is started in the background as soon as a batch with a position is
received (``warm_up``), so that it overlaps that batch's encoding. ``backfill_facts``
brings rows indexed before these columns existed (or by an older reading, ``FACTS_VERSION``)
up to date on the next run: their EXIF is read again, never their pixels, and nothing is
re-embedded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from indexer.decode.photo_facts import FACTS_VERSION, read_photo_facts
from indexer.pipeline.reports import IndexProgress, IndexReport, ProgressCallback
from indexer.places import ReverseGeocoder
from indexer.places.gazetteer import PlacesError
from indexer.store.facts import count_facts_todo, facts_todo, write_facts
from indexer.store.metadata import MetadataStore

log = logging.getLogger(__name__)

BACKFILL_PAGE = 500  # rows read, placed and written per transaction
_NO_PLACE = {"city": None, "region_code": None, "country_code": None, "place_geonameid": None}


class Placer:
    """Adds places to rows of decoded facts, a batch at a time (``place`` from one thread at a
    time; ``warm_up`` from another)."""

    def __init__(self, geocoder: Callable[[], ReverseGeocoder] | None = None) -> None:
        """``geocoder``: what builds the run's geocoder (default: ``ReverseGeocoder()``)."""
        self._make = geocoder
        self._geocoder: ReverseGeocoder | None = None
        self._started = False  # the geocoder is being built, or was
        self._ready = threading.Event()  # ... and is there (or failed to load)
        self._error: BaseException | None = None  # what building it raised, for ``place``
        self._lock = threading.Lock()
        self.load_seconds = 0.0  # building the geocoder (wall clock), once per run at most
        self.lookup_seconds = 0.0  # the batches' nearest-city queries (wall clock)
        self.waited_seconds = 0.0  # what committing waited for the geocoder (wall clock)
        self.located = 0  # rows given a place

    def warm_up(self, facts: Iterable[dict]) -> None:
        """Start building the geocoder in a background thread if these decoded facts hold a
        position and it is not started yet (``place`` waits for it)."""
        with self._lock:
            if self._started or not any(f.get("latitude") is not None for f in facts):
                return
            self._started = True
        threading.Thread(target=self._build, name="places-load", daemon=True).start()

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

    def _load(self) -> ReverseGeocoder | None:
        """The geocoder: built here, or by the warm-up thread (waited for)."""
        started = time.perf_counter()
        with self._lock:
            build_here, self._started = not self._started, True
        if build_here:
            self._build()
        self._ready.wait()
        self.waited_seconds += time.perf_counter() - started
        if self._error is not None:
            raise self._error
        return self._geocoder

    def _build(self) -> None:
        started = time.perf_counter()
        try:
            self._geocoder = (self._make or ReverseGeocoder)()
        except PlacesError as exc:  # an installation fault: the photos still get indexed
            log.warning("photos are indexed without places: %s", exc)
        except BaseException as exc:  # a bug: raised where the places are wanted (``_load``)
            self._error = exc
        finally:
            self.load_seconds += time.perf_counter() - started
            self._ready.set()


def backfill_facts(
    store: MetadataStore,
    photos: Path,
    placer: Placer,
    progress: ProgressCallback | None = None,
    page: int = BACKFILL_PAGE,
) -> int:
    """Read the EXIF facts of indexed rows that lack this version's (no pixels decoded), add
    their places and store them; returns how many rows were brought up to date. ``progress``
    hears of each page (phase "facts"): a library of 100k photos takes a minute or two."""
    total = count_facts_todo(store, FACTS_VERSION)
    if total == 0:
        return 0
    done, after, started = 0, 0, time.monotonic()
    while todo := facts_todo(store, FACTS_VERSION, after, page):
        rows = [{"id": i, **read_photo_facts(photos / path).columns()} for i, path in todo]
        for row in rows:
            if row["taken_at"] is None:  # unreadable now: keep the date read when it was indexed
                del row["taken_at"]
        placer.place(rows)
        write_facts(store, rows)
        done += len(rows)
        after = todo[-1][0]
        if progress is not None:
            elapsed = time.monotonic() - started
            progress(IndexProgress("facts", todo=max(total, done), done=done, elapsed=elapsed))
    if done:
        log.info("read the places, cameras and times of %d photos indexed before", done)
    return done


def complete_facts(
    store: MetadataStore,
    photos: Path,
    placer: Placer,
    report: IndexReport,
    progress: ProgressCallback | None = None,
) -> None:
    """What a run does once its batches are committed: backfill the facts of rows indexed
    before (``backfill_facts``), put the places figures in the report and, where rows
    changed, refresh the planner's statistics (``Database.analyze``: the place filters'
    indexes are chosen by them)."""
    report.facts_backfilled = backfill_facts(store, photos, placer, progress)
    report.located += placer.located
    report.places_seconds += placer.waited_seconds + placer.lookup_seconds
    counts = (report.new, report.changed, report.moved, report.deleted, report.embedded)
    if any(counts) or report.facts_backfilled or report.failures:
        store.db.analyze()
