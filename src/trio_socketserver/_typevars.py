"""The type variables the server/handler contract is generic in.

At type-checking time they carry PEP 696 defaults (``Any``), so an
unparameterised ``BaseRequestHandler`` means what typeshed's does and strict
users can opt into precise types one parameter at a time. Python 3.11's
``typing.TypeVar`` has no ``default=``, so at run time they are plain
TypeVars; only type checkers look at defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AddressT",
    "AddressT_contra",
    "RequestT",
    "RequestT_contra",
    "ServerT",
    "ServerT_contra",
]

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    RequestT = TypeVar("RequestT", default=Any)
    AddressT = TypeVar("AddressT", default=Any)
    ServerT = TypeVar("ServerT", default=Any)
else:
    from typing import TypeVar

    RequestT = TypeVar("RequestT")
    AddressT = TypeVar("AddressT")
    ServerT = TypeVar("ServerT")

RequestT_contra = TypeVar("RequestT_contra", contravariant=True)
AddressT_contra = TypeVar("AddressT_contra", contravariant=True)
ServerT_contra = TypeVar("ServerT_contra", contravariant=True)
