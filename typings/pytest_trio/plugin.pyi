# Stubs for pytest_trio.plugin (pytest-trio 0.8.0): the public decorator and
# the fixtures the plugin defines. Its pytest hook implementations and
# internal machinery (TrioFixture, handle_fixture, ...) are deliberately left
# out: nothing imports them; pytest calls them.
from collections.abc import Callable

from _pytest.fixtures import FixtureFunctionDefinition

# `trio_fixture(func)` marks `func` as a Trio fixture and returns
# `pytest.fixture(func)`, so its type is that of pytest.fixture's
# no-argument form. Function scope only: it takes no scope= on purpose.
def trio_fixture(func: Callable[..., object]) -> FixtureFunctionDefinition: ...

# Fixtures (each is `@pytest.fixture`/`@trio_fixture`-decorated in the
# plugin). Tests receive their values by parameter name (a
# trio.testing.MockClock for the two clocks, a trio.Nursery for `nursery`),
# so no import of these names is needed to use them.
mock_clock: FixtureFunctionDefinition
autojump_clock: FixtureFunctionDefinition
nursery: FixtureFunctionDefinition
