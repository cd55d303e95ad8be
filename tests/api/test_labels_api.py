"""Classify, label jobs, export, embed, status, metrics and the schema over a live server."""

from __future__ import annotations

import time

import httpx
import numpy as np
from conftest import vitrieve


def _first_image(client: httpx.Client) -> tuple[dict, bytes]:
    hit = client.get("/v1/search", params={"q": "a red circle", "k": 1}).json()["results"][0]
    return hit, client.get(hit["file_url"]).content


def test_classify_uploads(client: httpx.Client) -> None:
    _hit, data = _first_image(client)
    response = client.post(
        "/v1/classify",
        data={"labels": ["red, blue", "green"]},
        files=[("images", ("a.jpg", data)), ("images", ("b.jpg", data))],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == ["red", "blue", "green"] and len(body["results"]) == 2
    for verdict in body["results"]:
        assert abs(sum(verdict["probabilities"].values()) - 1) < 1e-4
        assert verdict["abstained"] == (verdict["label"] is None)
    assert body["results"][0]["probabilities"] == body["results"][1]["probabilities"]
    not_image = client.post(
        "/v1/classify",
        data={"labels": "a,b"},
        files={"images": ("x.png", b"<html>not an image</html>")},
    )
    assert not_image.status_code == 400 and not_image.json()["error"]
    no_labels = client.post("/v1/classify", files={"images": ("a.jpg", data)})
    assert no_labels.status_code == 422
    as_json = client.post("/v1/classify", json={"labels": ["a"]})
    assert as_json.status_code == 415


def test_label_job_and_export(client: httpx.Client, api_libraries) -> None:
    started = client.post(
        "/v1/labels",
        json={"labels": ["red", "blue", "green", "yellow"], "name": "api-colours", "null_z": None},
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["kind"] == "label" and job["url"] == f"/v1/jobs/{job['id']}"
    deadline = time.monotonic() + 120
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(job["url"]).json()
    assert job["state"] == "done", job
    images = client.get("/v1/status").json()["images"]
    assert job["done"] == images and job["fraction"] == 1.0
    rows = client.get("/v1/labels/export", params={"format": "json", "set": "api-colours"})
    assert rows.status_code == 200 and len(rows.json()) == images
    assert {r["label"] for r in rows.json()} <= {"red", "blue", "green", "yellow"}
    csv = client.get("/v1/labels/export", params={"format": "csv", "set": "api-colours"})
    cli = vitrieve("export", "--library", str(api_libraries.main), "--set", "api-colours")
    assert cli.returncode == 0 and csv.text == cli.stdout
    assert csv.headers["content-type"].startswith("text/csv")
    label = rows.json()[0]["label"]
    filtered = client.get(
        "/v1/search", params={"q": "a photo", "k": 100, "label": f"api-colours:{label}"}
    ).json()
    expected = {r["path"] for r in rows.json() if r["label"] == label}
    assert {r["path"] for r in filtered["results"]} == expected
    assert client.get("/v1/jobs/label-1").status_code == 404
    assert client.post("/v1/labels", json={"labels": []}).status_code == 422


def test_embed(client: httpx.Client) -> None:
    status = client.get("/v1/status").json()
    texts = client.post("/v1/embed", json={"texts": ["a red circle", "a blue square"]}).json()
    vectors = np.array(texts["texts"])
    assert texts["model_id"] == status["model_id"] and vectors.shape == (2, texts["dim"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    _hit, data = _first_image(client)
    both = client.post(
        "/v1/embed", data={"texts": "a red circle"}, files={"images": ("a.jpg", data)}
    ).json()
    assert np.allclose(both["texts"][0], vectors[0], atol=1e-5)
    assert abs(np.linalg.norm(both["images"][0]) - 1) < 1e-4
    assert client.post("/v1/embed", json={}).status_code == 400


def test_status_health_metrics_and_schema(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    status = client.get("/v1/status").json()
    assert status["images"] == status["counts"]["indexed"] > 0
    assert status["device"] == "cpu" and status["index_kind"] and not status["read_only"]
    client.get("/v1/search", params={"q": "metrics"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'vitrieve_http_requests_total{method="GET",route="/search",status="200"}' in (
        metrics.text
    )
    assert f'vitrieve_library_images{{library="main"}} {float(status["images"])}' in metrics.text
    schema = client.get("/openapi.json").json()
    for path in ("/v1/search", "/v1/images/{image_id}/similar", "/v1/classify", "/v1/labels",
                 "/v1/jobs/{job_id}", "/v1/labels/export", "/v1/embed", "/v1/status",
                 "/v1/libraries/{name}/search"):  # fmt: skip
        assert path in schema["paths"], path
    assert "text/html" in client.get("/docs").headers["content-type"]
    unknown = client.get("/v2/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]
