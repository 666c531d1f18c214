"""The server/handler contract as typing Protocols.

``socketserver`` couples a server and its handler through one call,
``RequestHandlerClass(request, client_address, server)``. typeshed types all
three as ``Any``. Here the call is a callback protocol,
:class:`HandlerFactory`, generic in the request, client-address and server
types, and each server class states the request and address types of its
transport. Because a callable's parameters are contravariant, a handler class
written for a broader server type (``TCPServer``) is accepted by a narrower
one (``ConcurrentTCPServer``), while a datagram handler given to a stream
server, or a handler for IP addresses given to a Unix server, is a type error.
"""

from __future__ import annotations

from typing import Protocol

from ._typevars import AddressT_contra, RequestT_contra, ServerT_contra

__all__ = ["HandlerFactory", "RequestHandler"]


class RequestHandler(Protocol):
    """What a server needs from a handler instance: one coroutine that serves
    the request to completion (``setup``, ``handle``, ``finish``)."""

    async def run(self) -> None: ...


class HandlerFactory(Protocol[RequestT_contra, AddressT_contra, ServerT_contra]):
    """What a server needs from ``RequestHandlerClass``: called as
    ``RequestHandlerClass(request, client_address, server)`` it returns a
    :class:`RequestHandler`. Any :class:`BaseRequestHandler` subclass is one."""

    def __call__(
        self,
        request: RequestT_contra,
        client_address: AddressT_contra,
        server: ServerT_contra,
        /,
    ) -> RequestHandler: ...
