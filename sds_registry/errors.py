"""The domain exception tree. Each facade maps it once (web/api/errors.py, web/fhir.py, ldap/results.py, ssp/).

    RegistryError
    ├── ConfigError            bad SDS_* setting (startup only)
    ├── InvalidIdentifier      a value breaks a format rule (field + rule); may carry several issues
    ├── NotFound               no such record
    ├── Conflict               uniqueness or stale version (optimistic concurrency)
    │   └── StaleVersion       If-Match does not match the stored version
    ├── PreconditionRequired   a write without If-Match
    ├── Forbidden              the caller may not write that record
    ├── Unauthorized           missing or unknown bearer token
    └── Unavailable            the database cannot be reached, or (``full``) has no room for the write
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    """One broken rule: which field, which rule, and a sentence for humans."""

    field: str
    rule: str
    message: str


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class ConfigError(RegistryError):
    """A setting is malformed; raised at startup."""


class InvalidIdentifier(RegistryError):
    """One or more values break format rules. ``issues`` lists each broken rule separately."""

    def __init__(self, issues: list[Issue] | Issue) -> None:
        self.issues = [issues] if isinstance(issues, Issue) else list(issues)
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in self.issues))

    @classmethod
    def single(cls, field: str, rule: str, message: str) -> InvalidIdentifier:
        return cls(Issue(field, rule, message))

    def prefixed(self, prefix: str) -> InvalidIdentifier:
        """The same issues with ``prefix`` put before each field name (e.g. "mhs[2].")."""
        return InvalidIdentifier([Issue(prefix + i.field, i.rule, i.message) for i in self.issues])


class NotFound(RegistryError):
    """No record matches."""


class Conflict(RegistryError):
    """The write would break uniqueness, or another writer got there first."""


class StaleVersion(Conflict):
    """The If-Match version is not the stored one."""


class PreconditionRequired(RegistryError):
    """A write to an existing record came without If-Match."""


class Forbidden(RegistryError):
    """The authenticated client may not write this record."""


class Unauthorized(RegistryError):
    """No valid bearer token."""


class Unavailable(RegistryError):
    """The database failed, not the request: unreachable, gone away mid-query, busy, or (``full``) out of room
    for a write (SQLite's SQLITE_FULL). Nothing was written; the client may try again. db.unavailable() says
    which driver errors are this."""

    def __init__(self, message: str, *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full
