"""The Streamlit app, run headless with ``streamlit.testing.v1.AppTest`` over real libraries."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
TIMEOUT = 120  # the first run of a session loads the model and calibrates the library
PAGES = ("views/search.py", "views/classify.py", "views/library.py", "views/model.py")


def _app(library: Path | str | None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.session_state["library_path"] = str(library) if library else None
    return app


def _texts(app: AppTest) -> str:
    """All the text a person would read on the page."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                 "error", "success"):  # fmt: skip
        parts += [str(element.value) for element in getattr(app, kind)]
    return "\n".join(parts)


@pytest.fixture
def empty_library(tmp_path: Path, trained_tiny: Path) -> Path:
    """A library whose photo folder holds no images yet."""
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library

    photos = tmp_path / "no-photos"
    photos.mkdir()
    report = index_library(photos, Encoder.load(trained_tiny), model_ref=str(trained_tiny),
                           options=IndexOptions(workers=0))  # fmt: skip
    return Path(report.library)


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders(demo_library: Path, page: str) -> None:
    app = _app(demo_library).run()
    if page != PAGES[0]:
        app.switch_page(page).run()
    assert not app.exception, app.exception
    assert app.title, "every page has a title"
    assert "Welcome" not in _texts(app)


def _objects(path: str) -> set[str]:
    """What the demo generator drew in a demo photo (IMG_0007.jpg, IMG_0007_edit.jpg)."""
    from retrieval.service.demo import demo_scene

    index = int(Path(path).stem.split("_")[1]) - 1
    return {o.name for o in demo_scene(index, 96).objects}


def _common_class(library: Path) -> str:
    """The class drawn most often in the library's photos."""
    from collections import Counter

    from retrieval.library.handle import Library

    with Library.open(library) as opened:
        photos = [p for p in opened.root.rglob("IMG_[0-9]*.*") if "BROKEN" not in p.name]
    counts = Counter(name for p in photos for name in _objects(p.name))
    return counts.most_common(1)[0][0]


def test_query_shows_results(demo_library: Path) -> None:
    wanted = _common_class(demo_library)
    app = _app(demo_library).run()
    app.text_input(key="query").set_value(f"a {wanted}")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert app.session_state["search"]["text"] == f"a {wanted}"
    assert len(app.get("image")) >= 4, "a grid of thumbnails"
    opens = [b for b in app.button if b.label == "Open"]
    assert len(opens) == len(app.get("image"))
    top = [_objects(b.help.split(" · ")[0]) for b in opens[:3]]
    assert any(wanted in names for names in top), (wanted, top)


def test_open_result_shows_details_and_more_like_this(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.text_input(key="query").set_value("a blue square")
    app.button(key="run-search").click().run()
    first = next(b for b in app.button if b.label == "Open")
    first.click().run()
    assert not app.exception, app.exception
    more = [b for b in app.button if b.label == "More like this"]
    assert more, "the large view offers more like this"
    more[0].click().run()
    assert not app.exception, app.exception
    assert app.session_state["search"].get("similar_to") is not None
    assert "Photos like" in _texts(app)


def test_nonsense_query_says_no_good_match_or_shows_matches(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.text_input(key="query").set_value("an invoice from the tax office")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert "No good match" in _texts(app)


def test_empty_library_shows_first_run_screen(empty_library: Path) -> None:
    app = _app(empty_library).run()
    assert not app.exception, app.exception
    assert "Welcome to vitrieve" in _texts(app)
    assert any("vitrieve demo" in str(code.value) for code in app.code)


def test_no_library_shows_first_run_screen() -> None:
    app = _app(None).run()
    assert not app.exception, app.exception
    assert "Welcome to vitrieve" in _texts(app)


@pytest.mark.parametrize("bad", ["/nonexistent/library", "/etc", "/etc/passwd"])
def test_bad_library_path_is_a_message(bad: str) -> None:
    app = _app(bad).run()
    assert not app.exception, app.exception
    assert app.error, "a clear message"
    assert "Welcome" not in _texts(app)


def test_unknown_id_is_refused(demo_library: Path) -> None:
    """A crafted id (or one that names a file outside the library) shows nothing."""
    from retrieval.library.handle import Library
    from ui import media

    with Library.open(demo_library) as library:
        assert media.thumbnail_bytes(library, 10**9) is None
        assert media.thumbnail_bytes(library, -1) is None
        assert media.large_bytes(library, 10**9) is None
    app = _app(demo_library).run()
    app.session_state["search"] = {"text": "a red circle", "limit": 24}
    app.session_state["selected_id"] = 10**9
    app.run()
    assert not app.exception, app.exception
    assert any("unknown image id" in str(e.value) for e in app.error)


def _png(colour: str, shape: str) -> bytes:
    import io

    from encoders.data.synthetic import render_object

    buffer = io.BytesIO()
    render_object(colour, shape, 96, seed=3).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_upload_searches_by_example(demo_library: Path) -> None:
    wanted = _common_class(demo_library)
    app = _app(demo_library).run()
    app.file_uploader[0].upload("example.png", _png(*wanted.split()), "image/png")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert app.session_state["search"]["image"] is not None
    opens = [b for b in app.button if b.label == "Open"]
    assert opens, "results for an example image"
    top = [_objects(b.help.split(" · ")[0]) for b in opens[:3]]
    assert any(wanted in names for names in top), (wanted, top)


def test_broken_upload_is_a_message(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.file_uploader[0].upload("fake.jpg", b"\xff\xd8 not really a jpeg", "image/jpeg")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert any("fake.jpg" in str(e.value) for e in app.error)
    assert "search" not in app.session_state


def test_classify_uploads_shows_probabilities_and_csv(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.switch_page("views/classify.py").run()
    app.text_area(key="labels").set_value("red circle\nblue square")
    app.file_uploader[0].set_value([("a.png", _png("red", "circle"), "image/png"),
                                    ("b.png", _png("blue", "square"), "image/png")])  # fmt: skip
    app.button(key="classify").click().run()
    assert not app.exception, app.exception
    assert len(app.get("arrow_vega_lite_chart")) + len(app.get("vega_lite_chart")) >= 2
    assert any(d.label == "Download CSV" for d in app.get("download_button"))
    verdicts = [m.value for m in app.markdown if "→" in str(m.value)]
    assert any("a.png" in v and "red circle" in v for v in verdicts), verdicts


def test_library_page_lists_failures_and_stats(demo_library: Path) -> None:
    app = _app(demo_library).run()
    app.switch_page("views/library.py").run()
    assert not app.exception, app.exception
    assert any("Failed files (1)" in e.label for e in app.expander)
    assert any(m.label == "Images" for m in app.metric)


def test_first_run_screen_builds_the_demo(
    trained_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo button builds photos + library in the background (model seeded: no training)."""
    import json
    import shutil

    from retrieval.service import jobs
    from retrieval.service.demo import MODEL_MARKER, DemoSettings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    settings = DemoSettings(cache=tmp_path / "vitrieve" / "demo", photos=300)
    shutil.copytree(trained_tiny, settings.checkpoint)
    marker = {"model": settings.model, "text": "minilm", "images": settings.train_images,
              "minutes": settings.train_minutes, "seed": settings.seed}  # fmt: skip
    (settings.run_dir / MODEL_MARKER).write_text(json.dumps(marker))

    app = _app(None).run()
    app.button(key="start-demo").click().run()
    assert not app.exception, app.exception
    library = Path(app.session_state["library_path"])
    status = jobs.wait(library, timeout=600)
    assert status is not None and status.state == "done", status
    app.run()
    assert not app.exception, app.exception
    assert "Welcome" not in _texts(app) and "photos in this library" in _texts(app)


def test_classify_page_agrees_with_the_cli(demo_library: Path, tmp_path: Path) -> None:
    """Issue 17 point 2: the page abstains by default like ``vitrieve classify`` (null_z; the
    checkbox used to start off), and its labels table and download are ``vitrieve export``'s
    format with every label (it used to be file,label,score with the best label only, which
    ``read_export`` could not read)."""
    from retrieval.labels.export import COLUMNS, export_string, read_export
    from retrieval.library.handle import Library

    with Library.open(demo_library) as library:
        ids = [int(i) for i in library.ids()[:3]]
        library.store.write_labels("agree", [(i, "red", 0.9) for i in ids] + [(ids[0], "x", 0.1)])
        rows = library.label_rows("agree")
    app = _app(demo_library).run()
    app.switch_page("views/classify.py").run()
    assert not app.exception, app.exception
    assert app.checkbox[0].value is True
    assert any(d.label == "Download labels as CSV" for d in app.get("download_button"))
    tables = [t.value for t in app.dataframe if list(t.value.columns) == list(COLUMNS)]
    assert tables and len(tables[0]) == len(rows) == 4
    exported = tmp_path / "agree.csv"
    exported.write_text(export_string(rows, "csv"), encoding="utf-8")  # what the button serves
    assert read_export(exported) == rows


def test_model_page_describes_the_loaded_model(demo_library: Path) -> None:
    """The Model page shows what the model is as loaded (its config, not only the file's)."""
    from retrieval.library.handle import Library

    with Library.open(demo_library) as library:
        text = library.encoder.config.to_dict()["text_cfg"]
    app = _app(demo_library).run()
    app.switch_page("views/model.py").run()
    assert not app.exception, app.exception
    summary = next(str(m.value) for m in app.markdown if "embedding size" in str(m.value))
    assert f"width {text['width']}, {text['layers']} layers" in summary.split("- text")[-1]
