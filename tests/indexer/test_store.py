"""MetadataStore on SQLite and on a real PostgreSQL server: rows, filters, labels, generations."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import text

from encoders.errors import VitrieveError
from indexer.store.metadata import MetadataStore
from indexer.store.queries import Filters
from indexer.store.schema import SCHEMA_VERSION


def _fill(store: MetadataStore) -> dict[str, int]:
    store.add_files(
        [("2020/a.jpg", 100, 1), ("2020/b_c.png", 5000, 2), ("2021/c.jpg", 900, 3),
         ("2020_x/d.jpg", 100, 4), ("top.jpg", 1, 5)]
    )  # fmt: skip
    ids = {r.path: r.id for r in store.all_files()}
    facts = {
        "2020/a.jpg": ("JPEG", datetime(2020, 5, 1), 640, 480),
        "2020/b_c.png": ("PNG", datetime(2020, 8, 1), 100, 2000),
        "2021/c.jpg": ("JPEG", datetime(2021, 1, 1), 3000, 2000),
        "2020_x/d.jpg": ("JPEG", None, 10, 10),
    }
    rows = [
        {"id": ids[p], "format": f, "taken_at": t, "width": w, "height": h, "content_hash": p}
        for p, (f, t, w, h) in facts.items()
    ]
    store.record_batch(1, "m", rows, [(ids["top.jpg"], "corrupt or truncated")], active=True)
    return ids


def test_schema_is_versioned(store: MetadataStore) -> None:
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT version FROM schema_version")).scalar() == (
            SCHEMA_VERSION
        )
    again = MetadataStore(store.engine.url.render_as_string(hide_password=False))
    assert again.schema_version == SCHEMA_VERSION  # reopening migrates nothing
    again.close()


def test_filters(store: MetadataStore) -> None:
    """The one filter implementation (``Filters``, as search uses it; issue 17 point 1)."""
    ids = _fill(store)
    pick = lambda *paths: np.array(sorted(ids[p] for p in paths), np.int64)  # noqa: E731
    assert store.filter_ids().dtype == np.int64
    np.testing.assert_array_equal(
        store.filter_ids(), pick("2020/a.jpg", "2020/b_c.png", "2021/c.jpg", "2020_x/d.jpg")
    )
    np.testing.assert_array_equal(
        store.filter_ids(folder="2020"), pick("2020/a.jpg", "2020/b_c.png")
    )
    np.testing.assert_array_equal(
        store.filter_ids(taken_after=datetime(2020, 6, 1), taken_before=datetime(2020, 12, 31)),
        pick("2020/b_c.png"),
    )
    np.testing.assert_array_equal(store.filter_ids(formats=("png",)), pick("2020/b_c.png"))
    np.testing.assert_array_equal(
        store.filter_ids(min_bytes=900), pick("2020/b_c.png", "2021/c.jpg")
    )
    np.testing.assert_array_equal(
        store.filter_ids(Filters(min_width=400, min_height=400)), pick("2020/a.jpg", "2021/c.jpg")
    )
    assert store.filter_ids(folder="20%").size == 0  # LIKE wildcards are escaped
    with pytest.raises(VitrieveError, match="empty taken date range"):
        store.filter_ids(taken_after=datetime(2021, 1, 1), taken_before=datetime(2020, 1, 1))


def test_status_failures_and_get_files(store: MetadataStore) -> None:
    ids = _fill(store)
    assert store.status_counts() == {"pending": 0, "indexed": 4, "failed": 1, "deleted": 0}
    assert store.failures() == [("top.jpg", "corrupt or truncated")]
    order = [ids["2021/c.jpg"], 999_999, ids["2020/a.jpg"]]
    assert [r.path for r in store.get_files(order)] == ["2021/c.jpg", "2020/a.jpg"]
    store.mark_deleted([ids["2021/c.jpg"]])
    assert store.status_counts()["deleted"] == 1
    assert ids["2021/c.jpg"] not in store.filter_ids()


def test_labels(store: MetadataStore) -> None:
    ids = _fill(store)
    a, c = ids["2020/a.jpg"], ids["2021/c.jpg"]
    store.write_labels("scenes", [(a, "beach", 0.9), (a, "city", 0.2), (c, "city", 0.7)])
    store.write_labels("colours", [(a, "city", 0.4)])
    assert store.read_labels("scenes")[a] == [("scenes", "beach", 0.9), ("scenes", "city", 0.2)]
    assert store.read_labels(ids=[a])[a] == [
        ("scenes", "beach", 0.9),
        ("colours", "city", 0.4),
        ("scenes", "city", 0.2),
    ]  # every set, best first: the one label reader (issue 17 point 1)
    np.testing.assert_array_equal(store.filter_ids(label="scenes:city"), sorted([a, c]))
    np.testing.assert_array_equal(store.filter_ids(label="scenes:city", min_label_score=0.5), [c])
    np.testing.assert_array_equal(store.filter_ids(label="city"), sorted([a, c]))  # any set
    store.write_labels("scenes", [(a, "forest", 0.5)])  # replaces a's labels in the set
    assert store.read_labels("scenes", [a]) == {a: [("scenes", "forest", 0.5)]}
    assert sorted(store.label_sets()) == ["colours", "scenes"]
    # a results page reads rows and labels in one query: the same as the two readers
    page = [c, a, 10**9]  # 10**9: no such row
    records, labels = store.files_with_labels(page)
    assert records == {r.id: r for r in store.get_files(page)}
    assert labels == store.read_labels(ids=page) and set(labels) == {a, c}


def test_generations_and_work_list(store: MetadataStore) -> None:
    ids = _fill(store)
    assert store.work_list(1) == []
    assert len(store.work_list(2)) == 4  # a new model must embed every live file
    store.record_batch(2, "m2", [{"id": ids["2020/a.jpg"]}], [], active=False)
    assert len(store.work_list(2)) == 3
    store.switch_generation(2)
    assert store.embedded_ids(1).size == 0
    np.testing.assert_array_equal(store.embedded_ids(2), [ids["2020/a.jpg"]])


def test_moved_file_keeps_id_and_labels(store: MetadataStore) -> None:
    ids = _fill(store)
    a = ids["2020/a.jpg"]
    store.write_labels("scenes", [(a, "beach", 0.9)])
    store.update_rows([{"id": a, "path": "moved/a.jpg"}])
    assert store.get_files([a])[0].path == "moved/a.jpg"
    assert store.read_labels("scenes") == {a: [("scenes", "beach", 0.9)]}
    store.mark_changed([(a, 1, 1)])  # new content: the old labels no longer apply
    assert store.read_labels("scenes") == {}
    assert store.get_files([a])[0].status == "pending"


@pytest.mark.parametrize("url", ["nosuchdriver://x", "postgresql+psycopg://u@127.0.0.1:1/x"])
def test_bad_url_is_one_clear_error(url: str) -> None:
    from encoders.errors import VitrieveError

    with pytest.raises(VitrieveError, match="database"):
        MetadataStore(url)
