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
from typing import Final, TypeAlias

__all__ = [
    "IPAddress",
    "IPv4Address",
    "IPv6Address",
    "UnixAddress",
    "UnixBindAddress",
    "UnixClientAddress",
    "bind_ip",
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


def _host_text(host: str | bytes | bytearray) -> str:
    # The socket module takes a host as str, bytes or bytearray (IDNA/ASCII
    # for the latter two); the checks below read it as text.
    return host if isinstance(host, str) else bytes(host).decode("latin-1")


def _is_ipv6_literal(host: str | bytes | bytearray) -> bool:
    try:
        ipaddress.IPv6Address(_host_text(host).split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_ipv4_literal(host: str | bytes | bytearray) -> bool:
    try:
        ipaddress.IPv4Address(_host_text(host))
    except ValueError:
        return False
    return True


#: The flowinfo field is 20 bits (the socket module raises OverflowError
#: from bind() beyond it).
_FLOWINFO_MAX: Final = 0xFFFFF


def check_ip_address(server_address: object, server_name: str) -> IPAddress:
    """Validate a ``(host, port)`` address, or raise a precise error.

    Accepts what the socket module binds: a ``str``, ``bytes`` or
    ``bytearray`` host, and for IPv6 ``(host, port, flowinfo)`` and
    ``(host, port, flowinfo, scope_id)``. The address is returned as given."""
    if isinstance(server_address, (str, bytes, os.PathLike)):
        raise TypeError(
            f"{server_name} needs a (host, port) tuple, not {server_address!r}; "
            "for a Unix socket path use UnixStreamServer or UnixDatagramServer"
        )
    if not isinstance(server_address, tuple) or len(server_address) not in (2, 3, 4):
        raise TypeError(
            f"{server_name} needs a (host, port) or (host, port, flowinfo, scope_id) tuple, "
            f"not {server_address!r}"
        )
    host, port = server_address[0], server_address[1]
    if not isinstance(host, (str, bytes, bytearray)):
        raise TypeError(f"host must be a str such as '127.0.0.1' or '::1', not {host!r}")
    text = _host_text(host)
    if text.startswith("[") and text.endswith("]"):
        # The URL/command-line spelling; the socket module wants the bare address.
        raise ValueError(
            f"host {host!r} is in brackets: write the IPv6 address without them, "
            f"({text[1:-1]!r}, {port!r})"
        )
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be between 0 and 65535 (0 picks a free port), not {port}")
    if len(server_address) > 2:
        extra = server_address[2:]
        if not all(isinstance(value, int) for value in extra):
            raise TypeError(f"flowinfo and scope_id must be ints, not {server_address!r}")
        if not 0 <= extra[0] <= _FLOWINFO_MAX:
            raise ValueError(
                f"flowinfo must be between 0 and {_FLOWINFO_MAX} (20 bits; 0 if unsure), "
                f"not {extra[0]} in {server_address!r}"
            )
        if _is_ipv4_literal(host):
            raise ValueError(
                f"{server_address!r} is an IPv6 address form (host, port, flowinfo"
                f"{', scope_id' if len(extra) == 2 else ''}) with the IPv4 host {host!r}: "
                f"write ({host!r}, {port}) for IPv4"
            )
    return server_address


def family_for_ip_address(address: IPAddress, class_family: int) -> int:
    """The family to create the socket with.

    A class that sets ``address_family = AF_INET6`` gets it; one left at the
    default ``AF_INET`` gets ``AF_INET6`` when the address can only be IPv6
    (an IPv6 literal, or a 3- or 4-tuple).
    """
    if class_family != socket.AF_INET:
        return class_family
    if len(address) > 2 or _is_ipv6_literal(address[0]):
        return socket.AF_INET6
    return socket.AF_INET


def bind_ip(sock: socket.socket, address: IPAddress, server_name: str) -> None:
    """``sock.bind(address)``, with the address named in a resolution error.

    A host that does not resolve (``nonexistent.invalid``, ``256.1.1.1``), or
    resolves only in the other family, fails in ``getaddrinfo`` with a
    message that names neither; the same :exc:`socket.gaierror` is raised
    with one that does."""
    try:
        sock.bind(address)
    except socket.gaierror as exc:
        family = "IPv6" if sock.family == socket.AF_INET6 else "IPv4"
        raise socket.gaierror(
            exc.errno,
            f"{server_name}: cannot bind to {address!r}: host {address[0]!r} is not an "
            f"{family} address or a host name that resolves to one ({exc.strerror}); "
            "use an IP address such as '127.0.0.1' or '::1', '' for all interfaces, "
            "or a resolvable host name",
        ) from exc


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
    if text.startswith("["):
        inside, bracket, after = text[1:].partition("]")
        if not bracket or not after.startswith(":"):
            raise ValueError(f"{option} expects [IPV6]:PORT (for example [::1]:8000), not {text!r}")
        host, port_text = inside, after[1:]
        if not host:
            raise ValueError(
                f"{option}: empty brackets in {text!r}; for all interfaces write "
                f":{port_text} (IPv4) or [::]:{port_text} (IPv6)"
            )
        if not _is_ipv6_literal(host):
            raise ValueError(
                f"{option}: brackets are for IPv6 addresses only; write {host}:{port_text}"
            )
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(
                f"{option} expects HOST:PORT (for example 127.0.0.1:8000), not {text!r}"
            )
        if ":" in host:
            # An IPv6 address without brackets: say how to write it, with the
            # last colon taken as the port separator only if that parses.
            example = f"[{text}]:PORT" if _is_ipv6_literal(text) else f"[{host}]:{port_text}"
            raise ValueError(f"{option}: write an IPv6 host in brackets, as {example}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{option}: port must be a number, not {port_text!r}") from None
    return check_ip_address((host, port), option)
