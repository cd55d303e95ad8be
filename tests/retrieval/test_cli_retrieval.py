"""The retrieval commands end to end: --json output, and one-line errors with exit codes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from retrieval.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def ok_json(*args: str):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_and_similar_json(synth_library) -> None:
    lib = synth_library.path
    data = ok_json("search", "a green square", "--library", lib, "-k", "4")
    assert len(data["results"]) == 4 and not data["no_good_match"]
    assert all(r["path"].startswith("green/") for r in data["results"])
    steps = {"encode", "filter", "index", "metadata"}
    assert set(data["timings_ms"]) == steps | {f"cpu_{s}" for s in steps}
    first = data["results"][0]
    again = ok_json("similar", str(first["id"]), "--library", lib, "-k", "2")
    assert again["results"][0]["id"] == first["id"]
    by_file = ok_json("similar", synth_library.root / first["path"], "--library", lib, "-k", "2")
    assert by_file["results"][0]["id"] == first["id"]
    filtered = ok_json("search", "a shape", "--library", lib, "--folder", "blue", "--type", "png")
    assert filtered["results"] and all(r["path"].startswith("blue/") for r in filtered["results"])
    negative = ok_json("search", "a shape -red", "--library", lib, "--not", "blue", "-k", "6")
    assert not {r["path"].split("/")[0] for r in negative["results"]} & {"red", "blue", "copies"}


def test_search_human_output_says_no_good_match(synth_library) -> None:
    result = run("search", "xqzv blorp", "--library", synth_library.path, "-k", "3")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "no good match; closest results:"


def test_default_library_is_the_current_folders(synth_library, monkeypatch) -> None:
    monkeypatch.chdir(synth_library.root)  # PHOTOS/.vitrieve
    assert ok_json("search", "a red star", "-k", "1")["results"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--library", "{tmp}/nowhere"], "no library"),
        (["search", "", "--library", "{lib}"], "empty query"),
        (["search", "  -people", "--library", "{lib}"], "empty query"),
        (["similar", "987654", "--library", "{lib}"], "unknown image id"),
        (["similar", "{tmp}/missing.jpg", "--library", "{lib}"], "not an image file"),
        (["similar", "{tmp}/bad.jpg", "--library", "{lib}"], "bad.jpg"),
        (["search", "x", "--image", "{tmp}/missing.jpg", "--library", "{lib}"], "image not found"),
        (["classify", "{tmp}/bad.jpg", "--labels", "a,b", "--library", "{lib}"], "bad.jpg"),
        (["classify", "{tmp}/bad.jpg", "--library", "{lib}"], "no labels"),
        (
            ["explain", "red", "{tmp}/missing.png", "--out", "{tmp}/h.png", "--library", "{lib}"],
            "image not found",
        ),
        (["explain", " ", "1", "--out", "{tmp}/h.png", "--library", "{lib}"], "empty query"),
        (["label", "--library", "{tmp}/nowhere", "--labels", "a"], "no library"),
        (["export", "--library", "{tmp}/nowhere"], "no library"),
        (["duplicates", "--library", "{tmp}/nowhere", "--json"], "no library"),
        (["eval", "search", "{tmp}/missing.tsv", "--library", "{lib}"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(synth_library, tmp_path, args, message) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg")
    filled = [a.format(tmp=tmp_path, lib=synth_library.path) for a in args]
    result = run(*filled, "--json") if "--json" not in filled else run(*filled)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_bad_arguments_exit_2(synth_library) -> None:
    assert run("search", "x", "--library", synth_library.path, "--sort", "size").exit_code == 2
    assert run("export", "--library", synth_library.path, "--format", "xml").exit_code == 2


def test_classify_label_export_duplicates_explain(synth_library, tmp_path) -> None:
    lib, root = synth_library.path, synth_library.root
    images = [root / p.path for p in synth_library.photos[::12]]
    verdicts = ok_json("classify", *images, "--labels", "red,blue,green,yellow", "--library", lib)
    assert [v["label"] for v in verdicts] == [p.colour for p in synth_library.photos[::12]]
    labelled = ok_json(
        "label", "--library", lib, "--labels", "red,blue,green,yellow", "--name", "cli"
    )
    assert labelled["images"] == len(synth_library.photos) + len(synth_library.copies)
    exported = ok_json("export", "--library", lib, "--set", "cli")
    assert len(exported) == labelled["images"] and {e["label_set"] for e in exported} == {"cli"}
    csv_out = tmp_path / "labels.csv"
    assert run("export", "--library", lib, "--set", "cli", "--out", csv_out).exit_code == 0
    assert csv_out.read_text().splitlines()[0] == "path,label_set,label,score"
    groups = ok_json("duplicates", "--library", lib)["groups"]
    assert sorted(sorted(g["paths"]) for g in groups) == sorted(
        sorted(p) for p in synth_library.copies
    )
    out = tmp_path / "heat.png"
    photo = root / synth_library.photos[0].path
    explained = ok_json("explain", "a red circle", photo, "--out", out, "--library", lib)
    assert out.is_file() and len(explained["hot_box"]) == 4


def test_eval_search(synth_library, tmp_path) -> None:
    reds = [p.path for p in synth_library.photos if p.colour == "red"]
    truth = tmp_path / "truth.tsv"
    truth.write_text("# query<TAB>relevant paths\nred\t" + "\t".join(reds) + "\nxqzv blorp\n")
    report = ok_json("eval", "search", truth, "--library", synth_library.path)
    assert report["positives"] == 1 and report["negatives"] == 1
    assert (
        report["metrics"]["ndcg@10"] > 0.8 and report["metrics"]["negative_flagged_no_match"] == 1
    )


# --- --device (issue 13): resolved before any work, carried down to the model --------------


def test_device_cpu_reaches_the_model(synth_library, monkeypatch) -> None:
    import torch

    from retrieval.library.handle import Library

    opened: list = []
    real_open = Library.open.__func__

    def recording_open(cls, *args, **kwargs):
        opened.append(real_open(cls, *args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(Library, "open", classmethod(recording_open))
    data = ok_json("search", "a red star", "--library", synth_library.path, "--device", "cpu")
    assert data["device"] == "cpu" and opened[-1].device == "cpu"
    assert opened[-1].encoder.device == torch.device("cpu")


@pytest.mark.parametrize("command", [["search", "x"], ["label", "--labels", "a"], ["ui"]])
def test_device_cuda_without_cuda_is_one_line_and_exit_2(synth_library, command) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run(*command, "--library", synth_library.path, "--device", "cuda")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "CUDA" in lines[0], lines
    assert not result.stdout


@pytest.mark.parametrize("spec", ["cuda", "auto", "cuda:1"])
def test_device_is_checked_but_not_pinned_to_gpu_0_while_parsing(
    synth_library, monkeypatch, spec: str
) -> None:
    """Issue 24 point 2: ``cuda``/``auto`` reach the command as given (each torchrun process
    resolves them to its local rank's GPU), not as the ``cuda:0`` parsing used to make of
    them. CUDA is faked (two GPUs); the library is opened no further than the device."""
    import torch

    from encoders.errors import VitrieveError
    from retrieval.library.handle import Library

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    asked: list[str] = []

    def stop_at_open(cls, *args, device: str = "", **kwargs):
        asked.append(device)
        raise VitrieveError("stopped here")

    monkeypatch.setattr(Library, "open", classmethod(stop_at_open))
    result = run("search", "x", "--library", synth_library.path, "--device", spec)
    assert "stopped here" in result.stderr and asked == [spec]
    missing = run("search", "x", "--library", synth_library.path, "--device", "cuda:2")
    assert missing.exit_code == 2 and "2 CUDA device(s)" in missing.stderr and len(asked) == 1


# --- the one error boundary (issue 17, point 6) ---------------------------------------------


def _break_status(monkeypatch) -> None:
    from retrieval.commands import index as index_commands

    def broken(*_args, **_kwargs):
        raise ValueError("boom")  # a bug, not a user error

    monkeypatch.setattr(index_commands, "locate_library", broken)


def test_a_bug_says_internal_error_and_debug_shows_the_traceback(tmp_path, monkeypatch) -> None:
    _break_status(monkeypatch)
    result = run("status", "--library", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "internal error: ValueError: boom; run with --debug for the traceback"
    ]
    debug = run("--debug", "status", "--library", tmp_path)
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "internal error: ValueError: boom" in debug.stderr


def test_debug_anywhere_on_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    from retrieval.cli import main

    _break_status(monkeypatch)
    monkeypatch.setattr("sys.argv", ["vitrieve", "status", "--library", str(tmp_path), "--debug"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1 and "Traceback" in capsys.readouterr().err


def test_user_errors_exit_1_without_a_traceback_even_from_os_errors(tmp_path) -> None:
    truth = tmp_path / "folder.tsv"
    truth.mkdir()  # reading a folder: an OSError, the user's, not a bug
    result = run("eval", "search", truth, "--library", tmp_path)
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


# --- commands take what users type (issue 17, point 3) --------------------------------------


def test_explain_takes_several_images_like_a_shell_glob(synth_library, tmp_path) -> None:
    photos = [synth_library.root / p.path for p in synth_library.photos[:2]]
    out = tmp_path / "heat"
    result = run("explain", "a red circle", *photos, "--out", out, "--library",
                 synth_library.path, "--device", "cpu", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [r["image"] for r in reports] == [str(p) for p in photos]
    assert all(r["device"] == "cpu" and len(r["hot_box"]) == 4 for r in reports)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in photos)


def test_thresholds_are_named_for_what_they_threshold(synth_library) -> None:
    lib = synth_library.path
    strict = ok_json("search", "a red star", "--library", lib, "--score-threshold", "0.99")
    assert all(r["weak"] for r in strict["results"])
    assert run("search", "x", "--library", lib, "--threshold", "0.5").exit_code == 2
    image = synth_library.root / synth_library.photos[0].path
    unsure = ok_json("classify", image, "--labels", "red,blue", "--library", lib,
                     "--probability-threshold", "1.0", "--null-z", "-1")  # fmt: skip
    assert unsure[0]["label"] is None or unsure[0]["score"] >= 1.0  # abstains under 1.0
    out_of_range = run("classify", image, "--labels", "a,b", "--probability-threshold", "1.5")
    assert out_of_range.exit_code == 2  # a probability is in [0, 1]
    assert ok_json("duplicates", "--library", lib, "--cosine-threshold", "1.0")["threshold"] == 1.0
