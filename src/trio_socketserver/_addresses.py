"""Address types, validation and address-family selection.

The stdlib picks the address family from a class attribute only
(``TCPServer.address_family = AF_INET``), so ``TCPServer(("::1", 0), ...)``
fails with a confusing ``gaierror``. We keep the class attribute (subclasses
that set it are obeyed) but, when it is left at the stream/datagram default,
infer IPv6 from the address itself.

Validation happens in the constructor so that a wrong argument fails where it
was written, with a message naming what to do, instead of deep inside
``bind()``.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import TypeAlias

__all__ = [
    "IPAddress",
    "IPv4Address",
    "IPv6Address",
    "UnixAddress",
    "UnixBindAddress",
    "UnixClientAddress",
    "check_ip_address",
    "check_unix_address",
    "family_for_ip_address",
    "parse_host_port",
]

#: ``(host, port)``, as the stdlib returns for ``AF_INET`` sockets.
IPv4Address: TypeAlias = tuple[str, int]
#: ``(host, port, flowinfo, scope_id)``, as the stdlib returns for ``AF_INET6``.
IPv6Address: TypeAlias = tuple[str, int, int, int]
#: What a TCP or UDP server binds to and what its clients' addresses are.
IPAddress: TypeAlias = IPv4Address | IPv6Address
#: A Unix socket path (``str``), or a Linux abstract-namespace name (``bytes``
#: starting with ``b"\0"``).
UnixAddress: TypeAlias = str | bytes
#: What a Unix server binds to: a path (also as ``os.PathLike``), or an
#: abstract-namespace name.
UnixBindAddress: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]
#: A Unix datagram client's address: ``None`` when the client never bound its
#: socket (it cannot be replied to then).
UnixClientAddress: TypeAlias = str | bytes | None


def _is_ipv6_literal(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_ip_address(server_address: object, server_name: str) -> IPAddress:
    """Validate a ``(host, port)`` address, or raise a precise error."""
    if isinstance(server_address, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{server_name} needs a (host, port) tuple, not {server_address!r}; "
            "for a Unix socket path use UnixStreamServer or UnixDatagramServer"
        )
    if not isinstance(server_address, tuple) or len(server_address) not in (2, 4):
        raise TypeError(
            f"{server_name} needs a (host, port) or (host, port, flowinfo, scope_id) tuple, "
            f"not {server_address!r}"
        )
    host, port = server_address[0], server_address[1]
    if not isinstance(host, str):
        raise TypeError(f"host must be a str such as '127.0.0.1' or '::1', not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535 (0 picks a free port), not {port}")
    if len(server_address) == 4:
        flowinfo, scope_id = server_address[2], server_address[3]
        if not isinstance(flowinfo, int) or not isinstance(scope_id, int):
            raise TypeError(f"flowinfo and scope_id must be ints, not {server_address!r}")
        return (host, port, flowinfo, scope_id)
    return (host, port)


def family_for_ip_address(address: IPAddress, class_family: int) -> int:
    """The family to create the socket with.

    A class that sets ``address_family = AF_INET6`` gets it; one left at the
    default ``AF_INET`` gets ``AF_INET6`` when the address can only be IPv6.
    """
    if class_family != socket.AF_INET:
        return class_family
    if len(address) == 4 or _is_ipv6_literal(address[0]):
        return socket.AF_INET6
    return socket.AF_INET


def check_unix_address(server_address: object, server_name: str) -> UnixAddress:
    """Validate a Unix socket path (``str``/``bytes``/``os.PathLike``)."""
    if isinstance(server_address, tuple):
        raise TypeError(
            f"{server_name} needs a socket path, not {server_address!r}; "
            "for (host, port) use TCPServer or UDPServer"
        )
    if isinstance(server_address, os.PathLike):
        server_address = os.fspath(server_address)
    if not isinstance(server_address, (str, bytes)):
        raise TypeError(f"{server_name} needs a socket path (str or bytes), not {server_address!r}")
    if not server_address:
        raise ValueError(f"{server_name} needs a non-empty socket path")
    return server_address


def parse_host_port(text: str, *, option: str) -> IPAddress:
    """Parse ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (command-line form)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{option} expects HOST:PORT (for example 127.0.0.1:8000), not {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{option}: write an IPv6 host in brackets, as [{host}]:{port_text}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{option}: port must be a number, not {port_text!r}") from None
    return check_ip_address((host, port), option)
