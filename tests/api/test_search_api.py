"""Search, similar, images, thumbnails and files over a live `vitrieve serve` (httpx)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import httpx


def _library_root(library_dir: Path) -> Path:
    from retrieval.library.handle import Library

    with Library.open(library_dir) as library:
        return library.root


def _search(client: httpx.Client, **params) -> dict:
    response = client.get("/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_search_ranks_pages_and_links(client: httpx.Client) -> None:
    whole = _search(client, q="a red circle", k=12)
    scores = [r["score"] for r in whole["results"]]
    assert len(scores) == 12 and scores == sorted(scores, reverse=True)
    assert whole["has_more"] and whole["next_offset"] == 12
    assert whole["no_good_match"] == (whole["relevant"] == 0)
    for hit in whole["results"]:
        assert hit["relevant"] == (hit["calibrated"] >= 0.5)
        assert not Path(hit["path"]).is_absolute() and ".." not in Path(hit["path"]).parts
        assert hit["file_url"] == f"/v1/images/{hit['id']}/file"
    first = _search(client, q="a red circle", k=6)
    second = _search(client, q="a red circle", k=6, offset=first["next_offset"])
    assert [r["id"] for r in first["results"] + second["results"]] == [
        r["id"] for r in whole["results"]
    ]
    thumb = client.get(whole["results"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert thumb.content[:4] == b"RIFF" and thumb.content[8:12] == b"WEBP"


def test_search_filters(client: httpx.Client) -> None:
    folder = _search(client, q="a photo", k=50, folder="2024")["results"]
    assert folder and all(r["path"].startswith("2024/") for r in folder)
    pngs = _search(client, q="a photo", k=50, type="PNG")["results"]
    assert pngs and all(r["format"] == "PNG" for r in pngs)
    dated = _search(client, q="a photo", k=50, after="2023-06-01", before="2023-12-31")
    for hit in dated["results"]:
        taken = datetime.fromisoformat(hit["taken_at"])
        assert datetime(2023, 6, 1) <= taken < datetime(2024, 1, 1)
    everything = _search(client, q="a photo", k=200)["results"]
    wanted = [r for r in everything if r["taken_at"] and "2023-06-01" <= r["taken_at"] < "2024"]
    assert {r["id"] for r in dated["results"]} == {r["id"] for r in wanted}
    assert _search(client, q="a photo", k=5, min_width=10_000)["results"] == []


def test_search_refuses_bad_input_as_json(client: httpx.Client) -> None:
    for params, status in (
        ({"q": ""}, 400), ({"q": "  -people"}, 400), ({"q": "x", "after": "yesterday"}, 422),
        ({"q": "x", "after": "2024-05-01", "before": "2024-01-01"}, 400),
        ({"q": "x", "k": 0}, 422), ({"q": "x", "sort": "random"}, 422),
        ({"q": "x", "unknown": "1"}, 422), ({"q": "x", "folder": "a\x00b"}, 400),
    ):  # fmt: skip
        response = client.get("/v1/search", params=params)
        assert response.status_code == status, (params, response.text)
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"]
        assert "Traceback" not in response.text


def test_post_search_by_id_upload_and_mixed(client: httpx.Client) -> None:
    by_text = _search(client, q="a blue square", k=1)["results"][0]
    by_id = client.post("/v1/search", json={"image_id": by_text["id"], "k": 3})
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["results"][0]["id"] == by_text["id"]
    assert by_id.json()["results"][0]["score"] > 0.99
    data = client.get(by_text["file_url"]).content
    upload = client.post("/v1/search", files={"image": ("photo", data)}, data={"k": "3"})
    assert upload.status_code == 200, upload.text
    assert upload.json()["results"][0]["id"] == by_text["id"]
    mixed = client.post(
        "/v1/search",
        json={
            "q": "red -green",
            "image_id": by_text["id"],
            "text_weight": 1,
            "image_weight": 0.5,
            "k": 4,
        },
    )
    assert mixed.status_code == 200 and len(mixed.json()["results"]) == 4
    nothing = client.post("/v1/search", json={"q": "", "k": 3})
    assert nothing.status_code == 400 and "empty query" in nothing.json()["error"]
    unknown = client.post("/v1/search", json={"image_id": 987654321})
    assert unknown.status_code == 404
    broken = client.post(
        "/v1/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]


def test_image_info_file_and_similar(client: httpx.Client, api_libraries) -> None:
    hit = _search(client, q="a green triangle", k=1)["results"][0]
    info = client.get(f"/v1/images/{hit['id']}").json()
    assert info["path"] == hit["path"] and info["width"] == hit["width"]
    original = client.get(info["file_url"])
    assert original.status_code == 200
    on_disk = (_library_root(api_libraries.main) / info["path"]).read_bytes()
    assert hashlib.sha256(original.content).digest() == hashlib.sha256(on_disk).digest()
    assert original.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in original.headers["content-security-policy"]
    similar = client.get(f"/v1/images/{hit['id']}/similar", params={"k": 5}).json()
    assert similar["results"][0]["id"] == hit["id"] and len(similar["results"]) == 5
    for missing in ("/v1/images/987654321", "/v1/images/987654321/file",
                    "/v1/images/987654321/thumbnail", "/v1/images/987654321/similar"):  # fmt: skip
        response = client.get(missing)
        assert response.status_code == 404 and response.json()["error"], missing
    assert client.get("/v1/images/abc").status_code == 422
    assert client.get("/v1/images/-1").status_code == 422


def test_several_libraries(client: httpx.Client) -> None:
    served = client.get("/v1/libraries").json()
    assert set(served) == {"main", "alt"} and served["main"] > served["alt"] > 0
    assert client.get("/v1/status").json()["name"] == "main"
    alt = client.get("/v1/libraries/alt/status").json()
    assert alt["name"] == "alt" and alt["images"] == served["alt"]
    hits = client.get("/v1/libraries/alt/search", params={"q": "a circle", "k": 3}).json()
    assert all(h["thumbnail_url"].startswith("/v1/libraries/alt/images/") for h in hits["results"])
    assert client.get(hits["results"][0]["thumbnail_url"]).status_code == 200
    missing = client.get("/v1/libraries/nope/search", params={"q": "x"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
