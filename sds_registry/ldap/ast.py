"""LDAP message and filter values shared by the codec, the protocol and the directory. Pure dataclasses.

The codec decodes BER into these; search (search.py, dit.py, filters.py) consumes SearchRequest and Filter,
the protocol dispatches on Message and the other requests.
Attribute descriptions and assertion values are kept as the client sent them (str, decoded UTF-8;
bytes that are not UTF-8 make the codec raise a protocolError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Scope(IntEnum):
    BASE = 0
    ONE = 1
    SUB = 2


class DerefAliases(IntEnum):
    NEVER = 0
    SEARCHING = 1
    FINDING = 2
    ALWAYS = 3


# ---- Filters (RFC 4511 §4.5.1.7) -------------------------------------------------------------------------


@dataclass(frozen=True)
class And:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    filter: Filter


@dataclass(frozen=True)
class Equality:
    attr: str
    value: str


@dataclass(frozen=True)
class Substrings:
    attr: str
    initial: str | None
    any: tuple[str, ...]
    final: str | None


@dataclass(frozen=True)
class GreaterOrEqual:
    attr: str
    value: str


@dataclass(frozen=True)
class LessOrEqual:
    attr: str
    value: str


@dataclass(frozen=True)
class Present:
    attr: str


@dataclass(frozen=True)
class Approx:
    attr: str
    value: str


@dataclass(frozen=True)
class Extensible:
    matching_rule: str | None
    attr: str | None
    value: str
    dn_attributes: bool = False


Filter = And | Or | Not | Equality | Substrings | GreaterOrEqual | LessOrEqual | Present | Approx | Extensible


# ---- Controls and requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    oid: str
    critical: bool = False
    value: bytes | None = None


@dataclass(frozen=True)
class SearchRequest:
    base: str
    scope: Scope
    deref: DerefAliases
    size_limit: int
    time_limit: int
    types_only: bool
    filter: Filter
    attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchEntry:
    """One entry to return: its DN and attributes in order, names in canonical spelling."""

    dn: str
    attributes: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """An LDAPResult: code, matched DN, diagnostic message (and referral URLs, unused)."""

    code: int
    matched_dn: str = ""
    message: str = ""


# ---- The other requests: decoded by the codec for the protocol, never seen by the directory ---------------


@dataclass(frozen=True, slots=True)
class BindRequest:
    version: int
    name: str
    #: The simple password, or None for a SASL bind (then ``sasl_mechanism`` is set).
    password: bytes | None
    sasl_mechanism: str | None = None


@dataclass(frozen=True, slots=True)
class UnbindRequest:
    pass


@dataclass(frozen=True, slots=True)
class AbandonRequest:
    message_id: int


@dataclass(frozen=True, slots=True)
class CompareRequest:
    dn: str
    attr: str
    value: str


@dataclass(frozen=True, slots=True)
class ExtendedRequest:
    name: str
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """Add, Modify, Delete or ModifyDN: decoded only far enough to refuse it."""

    kind: str
    dn: str
    tag: int


Request = (
    BindRequest | UnbindRequest | SearchRequest | AbandonRequest | CompareRequest | ExtendedRequest | UpdateRequest
)


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    op: Request
    controls: tuple[Control, ...] = ()
