"""Pytest plugin: moto's standalone S3 server on loopback (real HTTP, boto3 unpatched) and settings for it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from media_pub.config import StorageSettings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it once this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a moto S3 server for the whole session, on a port the OS picked."""
    from moto.server import ThreadedMotoServer

    # port=0: the server's own socket gets a free port from the OS, so there is no bind-then-close race.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(s3_server: str) -> StorageSettings:
    """S3 settings on the moto server, with a bucket of its own per test (created on first use)."""
    return StorageSettings(
        backend="s3",
        endpoint_url=s3_server,
        bucket=f"test-{uuid.uuid4().hex[:16]}",
        access_key_id="test",
        secret_access_key="test",
        region="us-east-1",
        multipart_threshold_mb=5,
        multipart_chunk_mb=5,
    )


@pytest.fixture
def s3_client(s3_settings: StorageSettings) -> Any:
    """A plain boto3 client on the same server, to inspect what the storage layer wrote."""
    return boto3.session.Session(
        aws_access_key_id=s3_settings.access_key_id,
        aws_secret_access_key="test",
        region_name=s3_settings.region,
    ).client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
