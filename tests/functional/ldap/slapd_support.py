"""Test support for the slapd differential test: bench/ldapkit's data, searches and slapd, plus our Directory."""

from __future__ import annotations

import shutil

from bench.ldapkit import slapd
from bench.ldapkit.diff import Answer
from bench.ldapkit.searches import Search
from sds_registry.ldap import ast
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.filterstr import parse_filter

SCOPES = {"base": ast.Scope.BASE, "one": ast.Scope.ONE, "sub": ast.Scope.SUB}


def available() -> bool:
    """slapd (with slapadd and the core schema) and ldapsearch are installed."""
    return slapd.available() and shutil.which("ldapsearch") is not None


def directory_answer(directory: Directory, search: Search) -> Answer:
    """The search put straight to our Directory (no wire), in the comparison's shape."""
    request = ast.SearchRequest(
        search.base,
        SCOPES[search.scope],
        ast.DerefAliases.NEVER,
        search.sizelimit,
        0,
        False,
        parse_filter(search.filter),
        search.attrs,
    )
    entries, result = directory.search(request, search.sizelimit, 0)
    return result.code, [(e.dn, {name: list(values) for name, values in e.attributes}) for e in entries]
