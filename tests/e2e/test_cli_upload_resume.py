"""`media-pub episode upload` over tus against a real server: cut connections, a killed CLI, stale state."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from media_pub.bootstrap import Container
from media_pub.cli import app as cli_app
from media_pub.cli import tus_client as tus
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW, new_user

CHUNK = 64 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), first waking a thread blocked in recv on it."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()


class CuttingProxy:
    """A loopback TCP proxy in front of the server that resets connections and throttles uploads.

    The n-th connection is reset after `cuts[n]` bytes from the client (while cuts remain);
    `drop_first_answer` resets the first connection when the server's first answer arrives, so the
    request was handled but the client never hears of it. `rate` limits client-to-server bytes per second.
    """

    def __init__(
        self, target: str, cuts: list[int] | None = None, *, drop_first_answer: bool = False
    ) -> None:
        url = urlsplit(target)
        self.target = (url.hostname or "127.0.0.1", url.port or 80)
        self.cuts = list(cuts or [])
        self.drop_first_answer = drop_first_answer
        self.rate: float | None = None
        self.resets = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        _close(self.listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                cut = self.cuts.pop(0) if self.cuts else None
                drop, self.drop_first_answer = self.drop_first_answer, False
            threading.Thread(target=self._up, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, drop), daemon=True).start()

    def _reset(self, client: socket.socket, upstream: socket.socket) -> None:
        with self.lock:
            self.resets += 1
        _abort(client)
        _abort(upstream)

    def _up(self, client: socket.socket, upstream: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            while data := client.recv(16 * 1024):
                if cut is not None and sent + len(data) >= cut:
                    upstream.sendall(data[: cut - sent])
                    self._reset(client, upstream)
                    return
                upstream.sendall(data)
                sent += len(data)
                if self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        _close(upstream)
        _close(client)

    def _down(self, upstream: socket.socket, client: socket.socket, drop: bool) -> None:
        try:
            while data := upstream.recv(64 * 1024):
                if drop:
                    self._reset(client, upstream)
                    return
                client.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(upstream)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's cache dir (XDG_CACHE_HOME) for this test only."""
    path = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    return path


@pytest.fixture
def token(container: Container, client: TestClient) -> str:
    headers = new_user(container, "uploader")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    return headers["Authorization"].split()[1]


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """About 770 KB: twelve 64 KiB chunks."""
    return write_speech_like(tmp_path / "take.wav", 4.0, lufs=-20, seed=4)


@pytest.fixture
def proxies(live_server: str) -> Iterator[list[CuttingProxy]]:
    made: list[CuttingProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def _upload(server: str, token: str, path: Path, *extra: str) -> Result:
    args = ["episode", "upload", "test-show", str(path), "--server", server, "--token", token]
    return CliRunner().invoke(cli_app, [*args, "--chunk-size", str(CHUNK), *extra])


def _episodes(client: TestClient, token: str) -> list[dict]:
    response = client.get("/api/v1/shows/test-show/episodes", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return list(response.json())


def _saved(cache: Path) -> dict:
    path = cache / "media-pub" / "uploads.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_one_ready_episode(client: TestClient, token: str, wav: Path) -> dict:
    episodes = _episodes(client, token)
    assert len(episodes) == 1, [e["id"] for e in episodes]
    assert episodes[0]["original"]["sha256"] == _sha256(wav)
    assert episodes[0]["media"] is not None
    return episodes[0]


def test_plain_upload_processes_and_publishes(
    live_server: str, client: TestClient, token: str, wav: Path, cache: Path
) -> None:
    result = _upload(live_server, token, wav, "--title", "Take", "--notes", "<p>n</p>", "--start", "0.5",
                     "--publish")  # fmt: skip
    assert result.exit_code == 0, result.output
    episode = _assert_one_ready_episode(client, token, wav)
    assert result.stdout.strip() == f"episode {episode['id']} published: {episode['media']['url']}"
    assert (episode["title"], episode["notes"]) == ("Take", "<p>n</p>")
    assert episode["media"]["processing"]["trim_start"] == pytest.approx(0.5)
    assert _saved(cache) == {}
    state = cache / "media-pub" / "uploads.json"
    assert state.stat().st_mode & 0o777 == 0o600
    assert token not in state.read_text()


def test_cut_connections_resume_by_themselves(
    live_server: str, client: TestClient, token: str, wav: Path, cache: Path, proxies: list[CuttingProxy]
) -> None:
    """The episode-creating POST's answer is lost (its Idempotency-Key replays it), then three resets
    mid-chunk: the CLI finishes by itself, with one episode holding the file's exact bytes."""
    proxy = CuttingProxy(live_server, [10_000_000, 150_000, 200_000, 90_000], drop_first_answer=True)
    proxies.append(proxy)
    result = _upload(proxy.url, token, wav)
    assert result.exit_code == 0, result.output
    assert proxy.resets == 4
    assert result.stderr.count("retrying in") >= 4
    _assert_one_ready_episode(client, token, wav)
    assert _saved(cache) == {}


def _server_offset(client: TestClient, token: str, url: str) -> int:
    response = client.head(url, headers={"Authorization": f"Bearer {token}", **TUS})
    return int(response.headers.get("Upload-Offset", 0))


def test_killed_cli_resumes_the_same_upload(
    live_server: str, client: TestClient, token: str, wav: Path, cache: Path, proxies: list[CuttingProxy]
) -> None:
    proxy = CuttingProxy(live_server)
    proxy.rate = 120_000  # bytes/s: about 6 s for the whole file
    proxies.append(proxy)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "MEDIA_PUB_TOKEN": token,
           "MEDIA_PUB_BASE_URL": proxy.url}  # fmt: skip
    command = [sys.executable, "-m", "media_pub", "episode", "upload", "test-show", str(wav)]
    process = subprocess.Popen(
        [*command, "--chunk-size", str(CHUNK)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        offset = 0
        while offset < 2 * CHUNK:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.1)
            entries = list(_saved(cache).values())
            if entries and entries[0]["url"]:
                offset = _server_offset(client, token, entries[0]["url"])
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    [saved] = _saved(cache).values()
    time.sleep(0.3)  # let the server notice the cut request
    before = _server_offset(client, token, saved["url"])
    assert 0 < before < wav.stat().st_size
    proxy.rate = None
    result = _upload(proxy.url, token, wav)
    assert result.exit_code == 0, result.output
    resumed_at = int(result.stderr.split("resuming at byte ")[1].split()[0])
    assert resumed_at >= before > 0
    episode = _assert_one_ready_episode(client, token, wav)
    assert episode["id"] == saved["episode_id"]
    assert _saved(cache) == {}


@pytest.mark.parametrize("episode_kept", [True, False], ids=["draft-reused", "episode-gone"])
def test_stale_state_starts_over(
    live_server: str, client: TestClient, token: str, wav: Path, cache: Path, episode_kept: bool
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    if episode_kept:
        draft = client.post("/api/v1/shows/test-show/episodes", json={"title": "Draft"}, headers=headers)
        episode_id = draft.json()["id"]
    else:
        episode_id = uuid.uuid4().hex
        assert client.get(f"/api/v1/episodes/{episode_id}", headers=headers).status_code == 404
    states = tus.UploadStates(tus.state_file())
    key = tus.upload_key(live_server, "test-show", wav)
    states.put(key, tus.SavedUpload("old-key", episode_id, "/api/v1/uploads/" + "0" * 32))
    result = _upload(live_server, token, wav)
    assert result.exit_code == 0, result.output
    assert "no longer has the saved upload; starting over" in result.stderr
    episode = _assert_one_ready_episode(client, token, wav)
    assert (episode["id"] == episode_id) is episode_kept
    assert _saved(cache) == {}


def test_bad_file_is_one_error_line_and_forgotten(
    live_server: str, client: TestClient, token: str, tmp_path: Path, cache: Path
) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio at all\n" * 10_000)
    result = _upload(live_server, token, junk)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert "HTTP 415" in errors[0] or "HTTP 422" in errors[0]
    assert _saved(cache) == {}
    assert [e["status"] for e in _episodes(client, token)] == ["draft"]


def test_gives_up_after_failures_in_a_row_and_keeps_state(tmp_path: Path, cache: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    wav = tmp_path / "tiny.wav"
    wav.write_bytes(b"RIFF" + bytes(100))
    result = _upload(dead, "mp_token", wav, "--retries", "2")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Service unavailable: ")
    assert last.endswith("(2 failures in a row); run the same command again to resume")
    assert sum(line.startswith("error") for line in result.stderr.splitlines()) == 1
    [saved] = _saved(cache).values()
    assert saved["episode_id"] is None
    assert saved["idempotency_key"]


def test_no_resume_ignores_saved_state(
    live_server: str, client: TestClient, token: str, wav: Path, cache: Path
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    draft = client.post("/api/v1/shows/test-show/episodes", json={"title": "Draft"}, headers=headers).json()
    key = tus.upload_key(live_server, "test-show", wav)
    tus.UploadStates(tus.state_file()).put(key, tus.SavedUpload("old-key", draft["id"], "/api/v1/uploads/x"))
    result = _upload(live_server, token, wav, "--no-resume", "--title", "Fresh")
    assert result.exit_code == 0, result.output
    assert "saved upload" not in result.stderr
    assert "resuming" not in result.stderr
    titles = sorted(e["title"] for e in _episodes(client, token))
    assert titles == ["Draft", "Fresh"]
    assert _saved(cache) == {}
