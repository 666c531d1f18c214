"""A drop-in ``socketserver`` on the trio engine.

``import trio_socketserver.sync as socketserver`` in place of
``import socketserver``; or, to switch the stdlib servers built on it
(``http.server``, ``xmlrpc.server``, ``wsgiref.simple_server``), install it
before they are imported::

    import sys
    import trio_socketserver.sync
    sys.modules["socketserver"] = trio_socketserver.sync

Same names, signatures, defaults, hooks and call order as the stdlib; the
differences (all of them improvements) are listed in docs/sync.rst.

The request handler classes are the stdlib's own: they are plain blocking
socket code, so using them unchanged is what makes existing handlers, and
``isinstance`` checks against ``socketserver`` classes, keep working.

This module only re-exports; each name is defined in the private module
named for what it is.
"""

from socketserver import BaseRequestHandler as BaseRequestHandler
from socketserver import DatagramRequestHandler as DatagramRequestHandler
from socketserver import StreamRequestHandler as StreamRequestHandler

from .._module_metadata import fixup_module_metadata as _fixup_module_metadata
from ._forking import ForkingMixIn as ForkingMixIn
from ._forking import ForkingTCPServer as ForkingTCPServer
from ._forking import ForkingUDPServer as ForkingUDPServer
from ._forking import ForkingUnixDatagramServer as ForkingUnixDatagramServer
from ._forking import ForkingUnixStreamServer as ForkingUnixStreamServer
from ._servers import BaseServer as BaseServer
from ._servers import TCPServer as TCPServer
from ._servers import UDPServer as UDPServer
from ._servers import UnixDatagramServer as UnixDatagramServer
from ._servers import UnixStreamServer as UnixStreamServer
from ._threading import ThreadingMixIn as ThreadingMixIn
from ._threading import ThreadingTCPServer as ThreadingTCPServer
from ._threading import ThreadingUDPServer as ThreadingUDPServer
from ._threading import ThreadingUnixDatagramServer as ThreadingUnixDatagramServer
from ._threading import ThreadingUnixStreamServer as ThreadingUnixStreamServer

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "ForkingMixIn",
    "ForkingTCPServer",
    "ForkingUDPServer",
    "ForkingUnixDatagramServer",
    "ForkingUnixStreamServer",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
    "UDPServer",
    "UnixDatagramServer",
    "UnixStreamServer",
]


# Our classes report trio_socketserver.sync.X; the stdlib's handlers keep theirs.
_fixup_module_metadata(__name__, globals(), __all__)
del _fixup_module_metadata
