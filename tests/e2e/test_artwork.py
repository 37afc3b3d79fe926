"""Show artwork: validated from its header, stored under a new URL each time, in the feed as itunes:image."""

from __future__ import annotations

from fastapi.testclient import TestClient
from lxml import etree

from media_pub.media.artwork import placeholder_artwork
from tests.conftest import SHOW

ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


def test_artwork_upload_and_feed(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    first = client.put("/api/v1/shows/test-show/artwork", content=placeholder_artwork("a"), headers=host)
    assert first.status_code == 200, first.text
    key = first.json()["artwork_key"]
    feed = etree.fromstring(client.get("/feeds/test-show.xml").content)
    href = feed.find(f"channel/{ITUNES}image").get("href")
    assert href == f"http://testserver/media/{key}"
    image = client.get(href.removeprefix("http://testserver"))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert client.head(href.removeprefix("http://testserver")).status_code == 200
    second = client.put("/api/v1/shows/test-show/artwork", content=placeholder_artwork("b"), headers=host)
    assert second.json()["artwork_key"] != key, "new artwork gets a new URL"


def test_bad_artwork_is_refused(client: TestClient, host: dict[str, str]) -> None:
    client.post("/api/v1/shows", json=SHOW, headers=host)
    small_png = (
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (300).to_bytes(4) + (300).to_bytes(4) + b"\x08\x02"
    )
    response = client.put("/api/v1/shows/test-show/artwork", content=small_png, headers=host)
    assert response.status_code == 422
    assert response.json()["code"] == "artwork-size"
    text = client.put("/api/v1/shows/test-show/artwork", content=b"<svg onload=alert(1)>", headers=host)
    assert text.status_code == 415
    assert client.put("/api/v1/shows/test-show/artwork", content=placeholder_artwork("x")).status_code == 401
