"""trio-socketserver: Python's socketserver contract on trio.

This module only re-exports; each name is defined (and documented) in the
private module named for what it is.
"""

from ._addresses import (
    IPAddress as IPAddress,
)
from ._addresses import (
    IPv4Address as IPv4Address,
)
from ._addresses import (
    IPv6Address as IPv6Address,
)
from ._addresses import (
    UnixAddress as UnixAddress,
)
from ._addresses import (
    UnixBindAddress as UnixBindAddress,
)
from ._addresses import (
    UnixClientAddress as UnixClientAddress,
)
from ._buffered import StreamReader as StreamReader
from ._buffered import StreamWriter as StreamWriter
from ._concurrency import (
    ConcurrencyMixIn as ConcurrencyMixIn,
)
from ._concurrency import (
    ConcurrentTCPServer as ConcurrentTCPServer,
)
from ._concurrency import (
    ConcurrentUDPServer as ConcurrentUDPServer,
)
from ._concurrency import (
    ConcurrentUnixDatagramServer as ConcurrentUnixDatagramServer,
)
from ._concurrency import (
    ConcurrentUnixStreamServer as ConcurrentUnixStreamServer,
)
from ._connection_stream import ConnectionStream as ConnectionStream
from ._datagram_servers import (
    DatagramServer as DatagramServer,
)
from ._datagram_servers import (
    UDPRequestHandler as UDPRequestHandler,
)
from ._datagram_servers import (
    UDPServer as UDPServer,
)
from ._datagram_servers import (
    UnixDatagramRequestHandler as UnixDatagramRequestHandler,
)
from ._datagram_servers import (
    UnixDatagramServer as UnixDatagramServer,
)
from ._handlers import (
    BaseRequestHandler as BaseRequestHandler,
)
from ._handlers import (
    DatagramRequest as DatagramRequest,
)
from ._handlers import (
    DatagramRequestHandler as DatagramRequestHandler,
)
from ._handlers import (
    StreamRequestHandler as StreamRequestHandler,
)
from ._module_metadata import fixup_module_metadata as _fixup_module_metadata
from ._protocols import HandlerFactory as HandlerFactory
from ._protocols import RequestHandler as RequestHandler
from ._serve import serve as serve
from ._server import BaseServer as BaseServer
from ._server import ServerStatistics as ServerStatistics
from ._socket_server import SocketServer as SocketServer
from ._stream_servers import (
    StreamServer as StreamServer,
)
from ._stream_servers import (
    TCPRequestHandler as TCPRequestHandler,
)
from ._stream_servers import (
    TCPServer as TCPServer,
)
from ._stream_servers import (
    UnixStreamRequestHandler as UnixStreamRequestHandler,
)
from ._stream_servers import (
    UnixStreamServer as UnixStreamServer,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "ConcurrencyMixIn",
    "ConcurrentTCPServer",
    "ConcurrentUDPServer",
    "ConcurrentUnixDatagramServer",
    "ConcurrentUnixStreamServer",
    "ConnectionStream",
    "DatagramRequest",
    "DatagramRequestHandler",
    "DatagramServer",
    "HandlerFactory",
    "IPAddress",
    "IPv4Address",
    "IPv6Address",
    "RequestHandler",
    "ServerStatistics",
    "SocketServer",
    "StreamReader",
    "StreamRequestHandler",
    "StreamServer",
    "StreamWriter",
    "TCPRequestHandler",
    "TCPServer",
    "UDPRequestHandler",
    "UDPServer",
    "UnixAddress",
    "UnixBindAddress",
    "UnixClientAddress",
    "UnixDatagramRequestHandler",
    "UnixDatagramServer",
    "UnixStreamRequestHandler",
    "UnixStreamServer",
    "serve",
]


_fixup_module_metadata(__name__, globals(), __all__)
del _fixup_module_metadata
