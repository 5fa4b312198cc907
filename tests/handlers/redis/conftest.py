"""The redis kind's servers: a fresh ``redis-server`` per test (tests kill, freeze and flush
it; one starts in a few milliseconds), with an append-only file so a restart keeps the data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer, running_redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis", "appendonly yes", "appendfsync always") as running:
        yield running


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    client = server.client()
    yield client
    client.close()
