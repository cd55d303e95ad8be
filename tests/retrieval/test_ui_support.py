"""What the UI relies on in retrieval: background jobs, upload decoding, demo photos, launcher."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from encoders.errors import VitrieveError
from retrieval.commands.ui import MAX_UPLOAD_MB, streamlit_command
from retrieval.service import jobs
from retrieval.service.demo import DONE_MARKER, demo_scene, write_demo_photos
from retrieval.service.uploads import decode_upload


def test_job_progress_is_persisted_and_read_back(tmp_path: Path) -> None:
    release = threading.Event()

    def work(progress: jobs.Progress) -> str:
        progress.update(found=10, done=3, failed=1)
        progress.flush()
        release.wait(10)
        progress.update(done=9)
        return "all done"

    jobs.start_job(tmp_path, "index", "/photos", work)
    running = jobs.read_status(tmp_path)
    assert running is not None and running.running
    with pytest.raises(VitrieveError, match="already running"):
        jobs.start_job(tmp_path, "index", "/photos", work)
    release.set()
    final = jobs.wait(tmp_path, timeout=10)
    assert final.state == "done" and final.message == "all done"
    assert (final.found, final.done, final.failed) == (10, 9, 1)
    assert final.fraction == 1.0 and final.eta_s is None


def test_failed_job_keeps_its_reason(tmp_path: Path) -> None:
    def work(progress: jobs.Progress) -> None:
        raise VitrieveError("photo folder not found: /nowhere")

    jobs.start_job(tmp_path, "index", "/nowhere", work)
    status = jobs.wait(tmp_path, timeout=10)
    assert status.state == "failed" and "/nowhere" in status.message


def test_running_job_of_a_dead_process_reads_as_interrupted(tmp_path: Path) -> None:
    status = jobs.JobStatus("index", "running", "/photos", 1.0, 2.0, pid=2**22 + 12345)
    jobs.write_status(tmp_path, status)
    assert jobs.read_status(tmp_path).state == "interrupted"
    (tmp_path / jobs.JOB_FILE).write_text("{not json")
    assert jobs.read_status(tmp_path) is None


def _png(size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 20, 20)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_uploads_are_decoded_safely_and_capped() -> None:
    assert decode_upload(_png(), target_size=32).size == (40, 40)
    with pytest.raises(VitrieveError, match="upload limit"):
        decode_upload(_png(), target_size=32, max_bytes=100)
    with pytest.raises(VitrieveError, match="x.jpg"):
        decode_upload(b"GIF89a but not really", target_size=32, name="x.jpg")
    with pytest.raises(VitrieveError, match="empty"):
        decode_upload(b"", target_size=32)


def test_demo_photos_are_idempotent_and_known(tmp_path: Path) -> None:
    assert write_demo_photos(tmp_path, 12, size_px=48) > 12  # + edits and a broken file
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.name != DONE_MARKER)
    stamp = {p: p.stat().st_mtime_ns for p in files}
    assert write_demo_photos(tmp_path, 12, size_px=48) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamp
    assert {".jpg", ".png"} <= {p.suffix for p in files}
    assert {o.name for o in demo_scene(0, 48).objects} == {"red circle"}


def test_ui_command_is_headless_with_xsrf_and_an_upload_cap(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path, "127.0.0.1", 8765)
    joined = " ".join(command)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("ui/app.py")
    for option in ("--server.headless true", "--server.enableXsrfProtection true",
                   f"--server.maxUploadSize {MAX_UPLOAD_MB}", "--server.port 8765"):  # fmt: skip
        assert option in joined
    # the app's own arguments: where its models run (--device, issue 13), then the library
    assert command[-5:] == ["--", "--device", "auto", "--library", str(tmp_path.resolve())]
    on_cpu = streamlit_command(tmp_path, "127.0.0.1", 8765, device="cpu")
    assert on_cpu[on_cpu.index("--device") + 1] == "cpu"
    assert json.dumps(command)  # plain strings only
