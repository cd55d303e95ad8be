"""Background jobs on a library (indexing a folder) whose progress outlives the page.

A job runs in a daemon thread of the current process (the UI server) and writes its progress
atomically to ``<library>/job.json`` after every step, so a reloaded page, another browser tab
or a CLI can read it. A job file that says "running" but whose process or thread is gone (the
server was restarted) reads as "interrupted"; indexing is resumable, so starting again continues.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from encoders.atomic import atomic_write_text
from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
WRITE_INTERVAL_S = 0.5  # progress is rewritten at most this often (plus at every state change)
_threads: dict[str, threading.Thread] = {}
_lock = threading.Lock()


@dataclass
class JobStatus:
    """What a job is doing; ``found``/``done``/``failed`` count files."""

    kind: str
    state: str  # running | done | failed | interrupted
    target: str  # e.g. the folder being indexed
    started_at: float
    updated_at: float
    pid: int = field(default_factory=os.getpid)
    found: int = 0
    done: int = 0
    failed: int = 0
    message: str = ""
    finished_at: float | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def rate(self) -> float:
        """Files per second so far."""
        elapsed = (self.finished_at or self.updated_at) - self.started_at
        return (self.done + self.failed) / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, when it can be told."""
        left = self.found - self.done - self.failed
        if not self.running or left <= 0 or self.rate <= 0:
            return None
        return left / self.rate

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return min(1.0, (self.done + self.failed) / self.found) if self.found else 0.0


def _path(library_dir: Path) -> Path:
    return Path(library_dir) / JOB_FILE


def write_status(library_dir: Path, status: JobStatus) -> None:
    """Replace the job file atomically (readers never see half a file)."""
    atomic_write_text(_path(library_dir), json.dumps(asdict(status)))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(library_dir: Path) -> JobStatus | None:
    """The last job of this library, with a dead "running" job reported as interrupted."""
    path = _path(library_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        status = JobStatus(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("unreadable job file %s: %s", path, exc)
        return None
    if status.running and not _alive(library_dir, status):
        status.state = "interrupted"
        status.message = status.message or "the server stopped before the job finished"
    return status


def _alive(library_dir: Path, status: JobStatus) -> bool:
    if status.pid != os.getpid():
        return _process_alive(status.pid)
    thread = _threads.get(str(Path(library_dir).resolve()))
    return thread is not None and thread.is_alive()


class Progress:
    """Handed to the work function: report counts, throttled to the job file."""

    def __init__(self, library_dir: Path, status: JobStatus) -> None:
        self.library_dir = library_dir
        self.status = status
        self._last_write = 0.0

    def update(self, *, found: int | None = None, done: int | None = None,
               failed: int | None = None, message: str | None = None) -> None:  # fmt: skip
        s = self.status
        s.found = s.found if found is None else found
        s.done = s.done if done is None else done
        s.failed = s.failed if failed is None else failed
        s.message = s.message if message is None else message
        s.updated_at = time.time()
        if s.updated_at - self._last_write >= WRITE_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        self._last_write = time.time()
        write_status(self.library_dir, self.status)


def start_job(
    library_dir: Path, kind: str, target: str, work: Callable[[Progress], str | None]
) -> JobStatus:
    """Run ``work(progress)`` in the background; refuse while this library already runs a job.

    ``work`` returns an optional final message; an exception marks the job failed with its text.
    """
    library_dir = Path(library_dir)
    key = str(library_dir.resolve())
    with _lock:
        current = read_status(library_dir)
        if current is not None and current.running:
            raise VitrieveError(f"a {current.kind} job is already running on this library")
        now = time.time()
        status = JobStatus(kind=kind, state="running", target=target, started_at=now,
                           updated_at=now)  # fmt: skip
        progress = Progress(library_dir, status)
        progress.flush()
        thread = threading.Thread(
            target=_run, args=(progress, work), name=f"vitrieve-{kind}", daemon=True
        )
        _threads[key] = thread
        thread.start()
    return status


def _run(progress: Progress, work: Callable[[Progress], str | None]) -> None:
    status = progress.status
    try:
        message = work(progress)
        status.state = "done"
        status.message = message or status.message
    except Exception as exc:  # the job's failure is shown to the user, not raised into nowhere
        log.exception("%s job failed", status.kind)
        status.state = "failed"
        status.message = str(exc) or type(exc).__name__
    status.finished_at = status.updated_at = time.time()
    progress.flush()


def wait(library_dir: Path, timeout: float | None = None) -> JobStatus | None:
    """Block until this process's job on the library ends (tests, CLI)."""
    thread = _threads.get(str(Path(library_dir).resolve()))
    if thread is not None:
        thread.join(timeout)
    return read_status(library_dir)


def start_indexing(
    photos: Path, model_ref: str, library: Path | None = None,
    encoder_threads: int | None = None, device: str = DEFAULT_DEVICE,
) -> tuple[Path, JobStatus]:  # fmt: skip
    """Index ``photos`` into ``library`` (default ``photos/.vitrieve``) in the background.

    Returns the library directory (where the job file is) and the first status. The job runs
    with ``vitrieve index``'s options (``IndexOptions``' defaults): decoder processes with a
    per-file time-out, so a file that hangs the decoder fails alone instead of hanging the job.
    ``encoder_threads``: torch threads while the job embeds (None: every core,
    ``os.cpu_count()``); the serving process pins torch to its query threads
    (``retrieval.service.serving``), which would otherwise leave the job's encoder on one thread.
    Torch's thread count is process-wide: queries served during the job use it too, and the
    serving count comes back when the job ends. ``device``: where the model runs.
    """
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, IndexProgress, index_library
    from indexer.pipeline.run import resolve_paths

    photos, target = resolve_paths(photos, library)  # the engine's own choice: same folder
    checkpoint = Path(model_ref).expanduser().resolve()
    if not checkpoint.is_dir():
        raise VitrieveError(f"model checkpoint not found: {model_ref}")
    target.mkdir(parents=True, exist_ok=True)

    def work(progress: Progress) -> str:
        def report(state: IndexProgress) -> None:
            progress.update(found=state.todo, done=state.done, failed=state.failed,
                            message=f"{state.phase}: {state.found} images found")  # fmt: skip

        encoder = Encoder.load(checkpoint, device=device)
        threads = encoder_threads if encoder_threads is not None else os.cpu_count() or 1
        options = IndexOptions(encoder_threads=threads, device=device)
        result = index_library(photos, encoder, model_ref=str(checkpoint), library=target,
                               options=options, progress=report)  # fmt: skip
        return (f"indexed {result.embedded} new or changed images, {len(result.failures)} "
                f"failed; {result.vectors} searchable")  # fmt: skip

    return target, start_job(target, "index", str(photos), work)


def start_labeling(
    library: Any, labels: list[str], templates: list[str] | None, label_set: str,
    abstain_threshold: float, null_z: float | None,
) -> JobStatus:  # fmt: skip
    """Label every image of an open ``retrieval.library.handle.Library`` in the background.

    ``abstain_threshold``, ``null_z``: as ``ZeroShotClassifier`` takes them (its defaults are
    the front ends'); ``null_z`` None keeps only the probability threshold."""
    from retrieval.labels.zeroshot import DEFAULT_TEMPLATES, ZeroShotClassifier

    classifier = ZeroShotClassifier(
        library.encoder, labels, templates or DEFAULT_TEMPLATES, abstain_threshold, null_z
    )

    def work(progress: Progress) -> str:
        total = library.count()
        progress.update(found=total, message=f"labelling into set {label_set!r}")
        report = library.label(
            classifier, label_set,
            progress=lambda done, total: progress.update(found=total, done=done),
        )  # fmt: skip
        return f"labelled {report.images} images into {label_set!r} ({report.abstained} none)"

    return start_job(library.path, "label", label_set, work)


def start_demo(cache: Path, train_minutes: float = 6.0) -> Path:
    """Build the demo library (photos, a model trained here, index) in the background.

    Returns the library directory, where the job's progress is written as it goes."""
    from indexer.layout import DEFAULT_LIBRARY_DIR, locate_library
    from retrieval.service.demo import DemoSettings, build_demo

    settings = DemoSettings(cache=Path(cache).expanduser().resolve(), train_minutes=train_minutes)
    library = locate_library(settings.photo_dir / DEFAULT_LIBRARY_DIR, new=True)
    library.mkdir(parents=True, exist_ok=True)

    def work(progress: Progress) -> str:
        progress.update(message="starting")
        progress.flush()
        built = build_demo(settings, lambda message: progress.update(message=message))
        return f"demo library ready in {built}"

    start_job(library, "demo", str(settings.photo_dir), work)
    return library
