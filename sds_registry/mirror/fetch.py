"""Read nhsAs/nhsMhs/nhsOrg entries from a live LDAP directory with ldap3: paged, over LDAPS or StartTLS.

No database here. Entries come out as ``(dn, [(attribute, value)])``, the shape the LDIF reader yields,
so the importer's conversion applies unchanged. ldap3 2.9 emits DeprecationWarnings (pyasn1 0.6 names,
``ssl.match_hostname``) that are not the user's business: they are silenced around every ldap3 call.
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sds_registry.errors import RegistryError

#: RFC 2696 Simple Paged Results control.
PAGED_RESULTS = "1.2.840.113556.1.4.319"
CLASSES = ("nhsAs", "nhsMhs", "nhsOrg")
DEFAULT_BASE = "ou=services,o=nhs"


class MirrorError(RegistryError):
    """The source directory could not be read (connection, TLS, bind, search)."""


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


with _quiet():
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars


@dataclass(frozen=True)
class Source:
    """Where and what to read. ``password`` None with a ``bind_dn`` is refused; no ``bind_dn``: anonymous."""

    url: str
    base: str = DEFAULT_BASE
    extra_filter: str = ""
    ods_codes: tuple[str, ...] = ()
    bind_dn: str = ""
    password: str | None = None
    cert: str = ""
    key: str = ""
    ca: str = ""
    start_tls: bool = False
    page_size: int = 500
    timeout: float = 30.0

    def search_filter(self) -> str:
        """The records of the scope: the three classes, ANDed with the ODS codes and the extra filter."""
        parts = ["(|" + "".join(f"(objectClass={c})" for c in CLASSES) + ")"]
        if self.ods_codes:
            codes = "".join(f"(nhsIDCode={escape_filter_chars(c)})" for c in self.ods_codes)
            parts.append(codes if len(self.ods_codes) == 1 else f"(|{codes})")
        if self.extra_filter:
            text = self.extra_filter.strip()
            parts.append(text if text.startswith("(") else f"({text})")
        return parts[0] if len(parts) == 1 else "(&" + "".join(parts) + ")"

    @property
    def actor(self) -> str:
        """The source as the audit names it: scheme://host:port (never credentials), at most 100 characters."""
        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        host = f"[{host}]" if ":" in host else host
        return (f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port else ""))[:100]

    @property
    def secure(self) -> bool:
        return urlsplit(self.url).scheme.lower() == "ldaps" or self.start_tls or bool(self.cert or self.ca)


@dataclass
class FetchStats:
    pages: int = 0
    entries: int = 0
    page_sizes: list[int] = field(default_factory=list)


def _server(source: Source) -> Any:
    parts = urlsplit(source.url)
    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname:
        raise MirrorError(f"{source.url!r}: expected ldap://host[:port] or ldaps://host[:port]")
    if parts.path not in ("", "/"):
        raise MirrorError(f"{source.url!r}: give the base DN with --base, not in the URL")
    ldaps = parts.scheme.lower() == "ldaps"
    tls = None
    if source.secure:
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=source.ca or None,
            local_certificate_file=source.cert or None,
            local_private_key_file=(source.key or source.cert) or None,  # a PEM may hold both
        )
    return ldap3.Server(parts.hostname, port=parts.port or (636 if ldaps else 389), use_ssl=ldaps, tls=tls,
                        get_info=ldap3.NONE, connect_timeout=source.timeout)


def _connect(source: Source) -> Any:
    if source.bind_dn and source.password is None:
        raise MirrorError("--bind-dn needs a password (--password-file or SDS_MIRROR_PASSWORD)")
    server = _server(source)
    auth = dict(user=source.bind_dn, password=source.password, authentication=ldap3.SIMPLE) if source.bind_dn \
        else dict(authentication=ldap3.ANONYMOUS)
    conn = ldap3.Connection(server, read_only=True, check_names=False, raise_exceptions=False,
                            receive_timeout=max(1, round(source.timeout)), **auth)  # ldap3 wants an int
    try:
        conn.open()
        if source.start_tls or (urlsplit(source.url).scheme.lower() == "ldap" and source.secure):
            if not conn.start_tls():
                raise MirrorError(f"{source.url}: StartTLS refused: {conn.result.get('description')}")
        if not conn.bind():
            raise MirrorError(f"{source.url}: bind refused: {conn.result.get('description')} "
                              f"{conn.result.get('message') or ''}".rstrip())
    except (LDAPException, OSError) as exc:  # OSError: TLS (ssl.SSLError) and sockets
        _close(conn)
        raise MirrorError(f"{source.url}: {exc}") from None
    except MirrorError:
        _close(conn)
        raise
    return conn


def _close(conn: Any) -> None:
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass
    sock = getattr(conn, "socket", None)  # ldap3 keeps the socket of a failed connect open
    if sock is not None:
        sock.close()


def _text(values: list[bytes], dn: str, name: str) -> list[str]:
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise MirrorError(f"{dn}: {name} is not UTF-8 text") from None


def _page(conn: Any, source: Source, cookie: bytes | None) -> tuple[list[dict[str, Any]], bytes | None]:
    with _quiet():
        try:
            conn.search(source.base, source.search_filter(), ldap3.SUBTREE, attributes=[ldap3.ALL_ATTRIBUTES],
                        paged_size=source.page_size, paged_cookie=cookie)
        except (LDAPException, OSError) as exc:
            raise MirrorError(f"{source.url}: search failed: {exc}") from None
    result = conn.result
    if result.get("result") != 0:
        raise MirrorError(f"{source.url}: search of {source.base!r} failed: {result.get('description')} "
                          f"{result.get('message') or ''}".rstrip())
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    page = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    return page, (control["value"]["cookie"] or None) if control else None


def fetch(source: Source, stats: FetchStats | None = None) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Every entry of the scope, page by page (RFC 2696 with ``source.page_size``), as (dn, [(name, value)]).

    Memory holds one page. Raises MirrorError on any failure, before or during the search: a partial read
    must never be taken for the whole directory."""
    stats = stats if stats is not None else FetchStats()
    with _quiet():
        conn = _connect(source)
    try:
        cookie: bytes | None = None
        while True:
            page, cookie = _page(conn, source, cookie)
            stats.pages += 1
            stats.entries += len(page)
            stats.page_sizes.append(len(page))
            for entry in page:
                raw = entry["raw_attributes"]
                yield entry["dn"], [(name, v) for name in raw for v in _text(raw[name], entry["dn"], name)]
            if not cookie:
                break
    finally:
        with _quiet():
            _close(conn)
