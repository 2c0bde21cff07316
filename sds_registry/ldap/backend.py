"""What search.py needs from a store of row entries, and what protocol.py needs from a directory (directory.py's
Directory is both). Types only, no I/O."""

from __future__ import annotations

from typing import Any, Protocol

from sds_registry.ldap import filters
from sds_registry.ldap.ast import Result, SearchEntry, SearchRequest
from sds_registry.ldap.dit import EntryClass, Selection

#: An entry's attributes in the order they are sent: (name, values).
Attrs = list[tuple[str, list[str]]]


class TimeLimitExceeded(Exception):
    """A query ran past the search's time limit."""


class Backend(Protocol):
    """Row entries by entry class. Satisfied structurally (Directory does not subclass it), so calls cost what
    a plain method call costs; a query that runs past ``deadline`` (monotonic; 0 = none) raises
    TimeLimitExceeded."""

    @property
    def dialect(self) -> str:
        """The SQL dialect name filters.prepare compiles for."""
        ...

    def rows(self, cls: EntryClass, key: filters.Key, params: dict[str, Any], sel: Selection, limit: int,
             deadline: float = 0.0) -> list[tuple[str, Attrs]] | None:
        """Entries of ``cls`` matching the prepared filter, at most ``limit``; None when the plan is empty."""
        ...

    def entry(self, cls: EntryClass, rdn_value: str, key: filters.Key, params: dict[str, Any], sel: Selection,
              deadline: float = 0.0) -> tuple[bool, tuple[str, Attrs] | None]:
        """(exists, the entry if the filter matched) for the entry of ``cls`` named ``rdn_value``."""
        ...

    def has_organisations(self) -> bool:
        """Whether ou=Organisations has any entry (the branch exists only then)."""
        ...


class DirectoryLike(Protocol):
    """What the protocol needs from sds_registry.ldap.directory.Directory."""

    def search(
        self, request: SearchRequest, size_limit: int, time_limit: float
    ) -> tuple[list[SearchEntry], Result]: ...

    def compare(self, dn: str, attr: str, value: str) -> Result: ...
