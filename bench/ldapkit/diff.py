"""Ask two LDAP servers the same searches and compare the answers. Bench/test-only; changes neither server.

    python -m bench.ldapkit.diff --a URI --b URI --filters FILE [--client ldapsearch|ldap3] [--jobs 4]

FILE is a search set (bench.ldapkit.searches). Each search goes to both servers through the OpenLDAP C
client (``ldapsearch``, whose exit status is the result code; 255 = not reached) or ldap3. Two answers
are the same when the result codes match and so do the entries: DNs normalised (case, spaces around
separators), attribute names case-insensitively, values as sets, objectClass values case-insensitively.
Searches marked ``count`` compare the result code and the number of entries only. Prints each
difference, then ``ldap_diff: searches=N same=S different=D``; exit status 1 when D > 0.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .searches import Search, read

NOT_REACHED = 255
Entries = list[tuple[str, dict[str, list[str]]]]
Answer = tuple[int, Entries]
Normalised = dict[str, dict[str, frozenset[str]]]
_RDN_SPLIT = re.compile(r"(?<!\\)[,+]")


def ldapsearch(url: str, search: Search, timeout: float = 120) -> Answer:
    argv = [
        "ldapsearch",
        "-x",
        "-LLL",
        "-o",
        "ldif-wrap=no",
        "-o",
        "nettimeout=10",
        "-H",
        url,
        "-b",
        search.base,
        "-s",
        search.scope,
        "-z",
        str(search.sizelimit),
        search.filter,
        *search.attrs,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, env=dict(os.environ, LDAPNOINIT="1"))
    except subprocess.TimeoutExpired:
        return NOT_REACHED, []
    return done.returncode, parse_ldif(done.stdout.decode("utf-8", "replace"))


def parse_ldif(text: str) -> Entries:
    """Entries of ``ldapsearch -LLL`` output (folded lines and base64 values understood)."""
    entries: Entries = []
    for block in re.split(r"\n\s*\n", text.replace("\n ", "")):
        current: tuple[str, dict[str, list[str]]] | None = None
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, rest = line.partition(":")
            value = (
                base64.b64decode(rest[1:].strip()).decode("utf-8", "replace")
                if rest.startswith(":")
                else (rest[1:] if rest.startswith(" ") else rest)
            )
            if current is None and name.lower() == "dn":
                current = (value, {})
                entries.append(current)
            elif current is not None:
                current[1].setdefault(name, []).append(value)
    return entries


def ldap3_search(url: str, search: Search, timeout: float = 120) -> Answer:
    import ldap3  # test dependency, imported only when asked for

    try:
        conn = ldap3.Connection(
            ldap3.Server(url, get_info=ldap3.NONE, connect_timeout=10),
            auto_bind=True,
            read_only=True,
            raise_exceptions=False,
            check_names=False,
            receive_timeout=int(timeout),
        )
    except Exception:  # any failure to connect means not reached
        return NOT_REACHED, []
    try:
        return ldap3_answer(conn, search)
    finally:
        conn.unbind()


def ldap3_answer(conn: Any, search: Search) -> Answer:
    """One search on an open ldap3 connection (tests reuse one connection for every search)."""
    import ldap3

    scope = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}[search.scope]
    conn.search(
        search.base,
        search.filter,
        search_scope=scope,
        attributes=list(search.attrs) or [ldap3.ALL_ATTRIBUTES],
        size_limit=search.sizelimit,
    )
    entries = [
        (e["dn"], {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in e["raw_attributes"].items()})
        for e in conn.response or ()
        if e.get("type") == "searchResEntry"
    ]
    return int(conn.result["result"]), entries


def normal_dn(dn: str) -> str:
    parts = (p.split("=", 1) for p in _RDN_SPLIT.split(dn) if p.strip())
    return ",".join("=".join(x.strip().lower() for x in p) for p in parts)


def normalise(entries: Iterable[tuple[str, dict[str, list[str]]]]) -> Normalised:
    out: Normalised = {}
    for dn, attrs in entries:
        values: dict[str, set[str]] = {}
        for name, vs in attrs.items():
            key = name.lower()
            values.setdefault(key, set()).update([v.lower() for v in vs] if key == "objectclass" else vs)
        out[normal_dn(dn)] = {k: frozenset(v) for k, v in values.items() if v}  # ldap3 lists absent ones as []
    return out


def differences(a: Answer, b: Answer, count_only: bool = False, limit: int = 8) -> list[str]:
    """What differs between two answers, one line each (empty when they agree)."""
    out = [f"result code a={a[0]} b={b[0]}"] if a[0] != b[0] else []
    if count_only:
        return out + ([f"entries a={len(a[1])} b={len(b[1])}"] if len(a[1]) != len(b[1]) else [])
    na, nb = normalise(a[1]), normalise(b[1])
    for side, ents, norm in (("a", a[1], na), ("b", b[1], nb)):
        if len(ents) != len(norm):
            out.append(f"{side} returned {len(ents) - len(norm)} duplicate entries")
    for side, mine, theirs in (("a", na, nb), ("b", nb, na)):
        only = sorted(set(mine) - set(theirs))
        if only:
            out.append(f"{len(only)} entries only in {side}, e.g. {only[:3]}")
    for dn in sorted(set(na) & set(nb)):
        for attr in sorted(set(na[dn]) | set(nb[dn])):
            va, vb = na[dn].get(attr, frozenset()), nb[dn].get(attr, frozenset())
            if va != vb:
                out.append(f"{dn} {attr}: a={sorted(va)[:3]} b={sorted(vb)[:3]}")
    return out[:limit] + (["..."] if len(out) > limit else [])


def compare(
    a: str, b: str, searches: list[Search], client: Callable[[str, Search], Answer] = ldapsearch, jobs: int = 4
) -> list[tuple[Search, list[str]]]:
    """Every search on both servers; returns the differing ones with their difference lines."""

    def one(search: Search) -> list[str]:
        ra, rb = client(a, search), client(b, search)
        lines = differences(ra, rb, search.compare == "count")
        if NOT_REACHED in (ra[0], rb[0]):
            lines.append("a server was not reached or timed out")
        return lines

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        found = list(pool.map(one, searches))
    return [(s, lines) for s, lines in zip(searches, found, strict=True) if lines]


def report(searches: list[Search], differing: list[tuple[Search, list[str]]]) -> str:
    lines = []
    for s, diff in differing:
        lines.append(
            f"DIFF {s.id} ({s.why}): base={s.base!r} scope={s.scope} sizelimit={s.sizelimit} "
            f"filter={s.filter} attrs={list(s.attrs)}"
        )
        lines += [f"  {x}" for x in diff]
    same = len(searches) - len(differing)
    lines.append(f"ldap_diff: searches={len(searches)} same={same} different={len(differing)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="reference server, e.g. ldap://127.0.0.1:38901")
    parser.add_argument("--b", required=True, help="server under test")
    parser.add_argument("--filters", type=Path, required=True, help="search set (python -m bench.ldapkit.searches)")
    parser.add_argument("--client", choices=["ldapsearch", "ldap3"], default="ldapsearch")
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args(argv)
    searches = read(args.filters)
    differing = compare(
        args.a, args.b, searches, ldapsearch if args.client == "ldapsearch" else ldap3_search, args.jobs
    )
    print(report(searches, differing))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
