"""Fixtures of the reliability suite (its hooks are loaded by tests/conftest.py)."""

from .report import form as form
from .report import row as row
