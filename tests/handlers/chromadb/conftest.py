"""The chromadb tests' servers: one seeded persist directory per run (2000 records, so the
index has been flushed and the WAL purged), copied by every test that starts or damages one."""

from __future__ import annotations

import pytest

from tests.support.chroma_server import Seeded, build_persist


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("seeded") / "persist"
    return Seeded(path, build_persist(path, keep_wal=False))
