"""The local pytest-trio stubs (typings/pytest_trio/) as the tests use them.

pytest-trio ships no ``py.typed``; without the stubs ``import pytest_trio``
is an ``import-untyped`` error under --strict.

Type-checked by ``nox -s typecheck`` (mypy --strict); never executed (and,
being under tests/typing, never collected, so the fixtures below are not
registered anywhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import assert_type

import pytest
import pytest_trio
import pytest_trio.plugin
import trio
import trio.testing
from _pytest.fixtures import FixtureFunctionDefinition
from pytest_trio import trio_fixture

assert_type(pytest_trio.__version__, str)
assert pytest_trio.trio_fixture is pytest_trio.plugin.trio_fixture


@trio_fixture
async def server_nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


@pytest_trio.trio_fixture
def sync_trio_fixture() -> int:
    return 1


# trio_fixture(f) is pytest.fixture(f): the same type.
assert_type(server_nursery, FixtureFunctionDefinition)


@pytest.fixture
def plain() -> int:
    return 1


assert_type(plain, FixtureFunctionDefinition)


# The plugin's own fixtures are requested by name; the values' types are
# what the plugin returns (no stub is involved in that).
async def example_test(
    autojump_clock: trio.testing.MockClock,
    mock_clock: trio.testing.MockClock,
    nursery: trio.Nursery,
) -> None:
    autojump_clock.jump(1)
    mock_clock.rate = 0
    nursery.start_soon(trio.sleep, 1)
