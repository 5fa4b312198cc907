"""The openwebui kind's servers: one OpenWebUI with its model stub per test module (start-up
~12 s, ~800 MB). Module scope, not session: the handler tests end by switching MFA on, which
no API switches off again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.model_stub import ModelStub
from tests.support.openwebui_server import Admin, OpenWebUIServer, Stack, module_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from module_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def stub(stack: Stack) -> ModelStub:
    return stack.stub


@pytest.fixture(scope="module")
def server(stack: Stack) -> OpenWebUIServer:
    return stack.server


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Admin:
    return stack.admin
