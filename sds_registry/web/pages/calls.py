"""The calls a consumer makes to find one provider endpoint, written out for copying: the GP Connect two-step
``ldapsearch``, the SDS FHIR API's /Endpoint and /Device, and /api/resolve. Pure: strings in, strings out."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from urllib.parse import quote

from sds_registry.fhir.search import INTERACTION_SYSTEM, ODS_SYSTEM
from sds_registry.web.fhir import STANDARD_BASE as FHIR_BASE

LDAP_BASE = "ou=services, o=nhs"


@dataclass(frozen=True)
class Call:
    """One copyable command: what it asks, and the command line."""

    title: str
    command: str


def ldap_escape(value: str) -> str:
    """An RFC 4515 assertion value: ``*``, ``(``, ``)``, ``\\`` and NUL as ``\\XX``."""
    return "".join(f"\\{ord(c):02x}" if c in "*()\\\0" else c for c in value)


def consumer_calls(*, http_base: str, ldap_url: str | None, ods_code: str, interaction_id: str,
                   party_key: str) -> list[Call]:
    """The calls for the provider of ``interaction_id`` at ``ods_code``: ``http_base`` is this server's HTTP
    address (``http://host:port``), ``ldap_url`` its LDAP facade's (None: LDAP is off)."""
    calls: list[Call] = []
    if ldap_url:
        mhs_filter = (f"(&(nhsIDCode={ldap_escape(ods_code)})(objectClass=nhsMhs)"
                      f"(nhsMhsSvcIA={ldap_escape(interaction_id)}))")
        as_filter = (f"(&(nhsIDCode={ldap_escape(ods_code)})(objectClass=nhsAs)"
                     f"(nhsMhsPartyKey={ldap_escape(party_key)}))")
        calls.append(Call("LDAP, step 1: the endpoint and party key", shlex.join(
            ["ldapsearch", "-x", "-H", ldap_url, "-b", LDAP_BASE, mhs_filter, "nhsMhsEndPoint", "nhsMhsPartyKey"])))
        calls.append(Call("LDAP, step 2: the provider's ASID", shlex.join(
            ["ldapsearch", "-x", "-H", ldap_url, "-b", LDAP_BASE, as_filter, "uniqueIdentifier"])))
    organisation = f"organization={ODS_SYSTEM}|{quote(ods_code, safe='')}"
    identifier = f"identifier={INTERACTION_SYSTEM}|{quote(interaction_id, safe=':')}"
    accept = ["-H", "Accept: application/fhir+json"]
    calls.append(Call("SDS FHIR API: the endpoint", shlex.join(
        ["curl", *accept, f"{http_base}{FHIR_BASE}/Endpoint?{organisation}&{identifier}"])))
    calls.append(Call("SDS FHIR API: the provider's ASID", shlex.join(
        ["curl", *accept, f"{http_base}{FHIR_BASE}/Device?{organisation}&{identifier}"])))
    resolve = f"{http_base}/api/resolve?ods={quote(ods_code, safe='')}&interaction={quote(interaction_id, safe=':')}"
    calls.append(Call("JSON API: both in one call", shlex.join(["curl", resolve])))
    return calls


def ldap_url(bind: str, ldaps_bind: str, request_host: str) -> str | None:
    """The LDAP facade's URL as a client reaches it: its bind address, or the host the page was asked on when the
    facade listens on every interface; None when LDAP is off."""
    for scheme, value in (("ldap", bind), ("ldaps", ldaps_bind)):
        if value:
            host, _, port = value.rpartition(":")
            host = host.strip("[]")
            if host in ("0.0.0.0", "::", ""):
                host = request_host
            shown = f"[{host}]" if ":" in host else host
            return f"{scheme}://{shown}:{port}"
    return None
