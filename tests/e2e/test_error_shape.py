"""Every error the API can give has the RFC 9457 problem shape (after datasette's test_error_shape)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_every_operation_without_a_token_answers_a_problem(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, operations in spec["paths"].items():
        url = re.sub(r"\{[^}]+\}", "nope", path)
        for method in operations:
            response = client.request(method.upper(), url, content=b"{}")
            if response.status_code < 400:
                continue
            checked += 1
            assert response.status_code != 500, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json", (method, path)
            body = response.json()
            assert {"type", "title", "status", "detail", "instance", "code"} <= set(body), body
            assert body["status"] == response.status_code
    assert checked >= 8


def test_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/api/v1/episodes/{episode_id}/media" in client.get("/openapi.json").json()["paths"]
