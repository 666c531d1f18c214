# Local stubs for pytest-trio 0.8.0, which ships no py.typed marker.
# Kept to the names the tests use; mirrors pytest_trio/__init__.py.
from ._version import __version__ as __version__
from .plugin import trio_fixture as trio_fixture

__all__ = ["trio_fixture"]
