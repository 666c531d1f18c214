"""The loggers trio_socketserver writes to.

Everything the library reports goes through :mod:`logging`, never to stderr
directly, so that an application decides where it ends up:

* ``trio_socketserver.server``: handler errors (``handle_error``), accept
  errors and back-off, shutdown progress.
* ``trio_socketserver.serve``: where :func:`serve` listens, signals received.
"""

from __future__ import annotations

import logging

__all__ = ["SERVER_LOGGER", "SERVE_LOGGER"]

SERVER_LOGGER = logging.getLogger("trio_socketserver.server")
SERVE_LOGGER = logging.getLogger("trio_socketserver.serve")
