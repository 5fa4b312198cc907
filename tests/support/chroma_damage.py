"""Damage to a stopped Chroma persist directory, the patterns of components.md (ChromaDB
2.3): each takes anything with the persist directory and its vector segment directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol


class Store(Protocol):
    @property
    def persist(self) -> Path: ...

    @property
    def segment(self) -> Path: ...


def missing_segment_dir(store: Store) -> None:
    shutil.rmtree(store.segment)


def zeroed_header(store: Store) -> None:
    header = store.segment / "header.bin"
    header.write_bytes(b"\0" * header.stat().st_size)


def garbage_pickle(store: Store) -> None:
    (store.segment / "index_metadata.pickle").write_bytes(b"\x15garbage" * 25)


def truncated_data(store: Store) -> None:
    data = store.segment / "data_level0.bin"
    os.truncate(data, data.stat().st_size // 2)


def corrupt_sqlite_header(store: Store) -> None:
    with open(store.persist / "chroma.sqlite3", "r+b") as handle:
        handle.write(b"\0" * 100)


def corrupt_sqlite_pages(store: Store) -> None:
    path = store.persist / "chroma.sqlite3"
    with open(path, "r+b") as handle:
        for offset in range(4096 * 2, path.stat().st_size, 4096 * 3):
            handle.seek(offset)
            handle.write(b"\xa5" * 512)


def deleted_sqlite(store: Store) -> None:
    (store.persist / "chroma.sqlite3").unlink()
