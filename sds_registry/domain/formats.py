"""Format validators for every identifier the registry stores. Pure: no Flask, no SQLAlchemy.

Each validator returns the value (normalised where the rule allows) or raises InvalidIdentifier
naming the field and the rule. ``check_service_root_url`` reports every broken rule separately.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from sds_registry.errors import InvalidIdentifier, Issue

ASID_RE = re.compile(r"\d{12}")
PARTY_KEY_RE = re.compile(r"[A-Z0-9]{1,9}-\d{5,9}")
ODS_RE = re.compile(r"[A-Z0-9]{3,9}")
CPA_ID_RE = re.compile(r"[A-Za-z0-9:_-]{1,64}")
URN_RE = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:[A-Za-z0-9()+,\-.:=@;$_!*'%/?#]+")
GPCONNECT_PREFIX = "urn:nhs:names:services:gpconnect:"
GPCONNECT_RE = re.compile(
    r"urn:nhs:names:services:gpconnect(:(structured|documents))?:fhir:"
    r"(rest:[a-z]+:[a-z_]+|operation:gpc\.[a-z]+)(-\d+)?"
)
SPINE_DATE_RE = re.compile(r"\d{14}")
DURATION_RE = re.compile(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")
DNS_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
PCT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 pchar plus "/" (unreserved, sub-delims, ":" "@", and pct-encoded handled separately).
PATH_CHARS_RE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
FHIR_VERSION_NAMES = frozenset({"DSTU1", "DSTU2", "STU3", "R4", "R4B", "R5"})

IS_AUTHENTICATED = ("none", "transient", "persistent")
SYNC_REPLY_MODES = ("MSHSignalsOnly", "None", "Never", "SignalsAndResponse")
ALWAYS_NEVER = ("always", "never")
EP_INTERACTION_TYPES = ("HL7", "ebXML", "FHIR", "N/A")


def _fail(field: str, rule: str, message: str) -> InvalidIdentifier:
    return InvalidIdentifier.single(field, rule, message)


def _text(value: object, field: str) -> str:
    if value is None:  # absent (or JSON null): FHIR's "required", not a wrong type
        raise _fail(field, "required", "is required")
    if not isinstance(value, str):
        raise _fail(field, "type", "must be a string")
    return value


def asid(value: object, field: str = "asid") -> str:
    """ASID: exactly 12 digits, kept as a string (ASIDs may start with 0)."""
    text = _text(value, field)
    if not ASID_RE.fullmatch(text):
        raise _fail(field, "asid-format", f"{text!r} is not an ASID: 12 digits expected")
    return text


def ods_code(value: object, field: str = "ods_code") -> str:
    """ODS code: 3 to 9 upper-case letters or digits (nhsIDCode matches case-exactly)."""
    text = _text(value, field)
    if not ODS_RE.fullmatch(text):
        raise _fail(field, "ods-format", f"{text!r} is not an ODS code: 3-9 upper-case letters or digits")
    return text


def party_key(value: object, field: str = "party_key") -> str:
    """Party key: ``<ODS>-<5 to 9 digits>``, e.g. T99999-9999999."""
    text = _text(value, field)
    if not PARTY_KEY_RE.fullmatch(text):
        raise _fail(field, "party-key-format", f"{text!r} is not a party key: <ODS code>-<5 to 9 digits>")
    return text


def cpa_id(value: object, field: str = "cpa_id") -> str:
    """CPA id / MHS uniqueIdentifier: letters, digits, ':', '_' or '-' (1-64)."""
    text = _text(value, field)
    if not CPA_ID_RE.fullmatch(text):
        raise _fail(field, "cpa-id-format", f"{text!r} is not a CPA id: 1-64 of A-Z a-z 0-9 : _ -")
    return text


def interaction_id(value: object, field: str = "interaction_id") -> str:
    """Interaction ID: a URN; GP Connect IDs must also follow the GP Connect grammar."""
    text = _text(value, field)
    if not URN_RE.fullmatch(text):
        raise _fail(field, "urn-format", f"{text!r} is not a URN (urn:<nid>:<nss>)")
    if text.startswith(GPCONNECT_PREFIX) and not GPCONNECT_RE.fullmatch(text):
        raise _fail(
            field,
            "gpconnect-interaction-format",
            f"{text!r} does not follow the GP Connect interaction ID grammar "
            "urn:nhs:names:services:gpconnect[:capability]:fhir:(rest:<op>:<subject>|operation:gpc.<name>)[-<n>]",
        )
    return text


def spine_date(value: object, field: str = "date") -> str:
    """A Spine date: YYYYMMDDHHMMSS, a real calendar time."""
    text = _text(value, field)
    if not SPINE_DATE_RE.fullmatch(text):
        raise _fail(field, "date-format", f"{text!r} is not a date in the form YYYYMMDDHHMMSS")
    try:  # the fields at fixed places: strptime's answer on 14 digits, a tenth of its cost
        datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:]))
    except ValueError:
        raise _fail(field, "date-value", f"{text!r} is not a real calendar date and time") from None
    return text


def duration(value: object, field: str = "duration") -> str:
    """An ISO 8601 duration such as PT5M."""
    text = _text(value, field)
    if not DURATION_RE.fullmatch(text):
        raise _fail(field, "duration-format", f"{text!r} is not an ISO 8601 duration (e.g. PT5M)")
    return text


def one_of(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    """A validator accepting exactly one of ``choices`` (case-sensitive)."""

    def check(value: object, field: str = "value") -> str:
        text = _text(value, field)
        if text not in choices:
            raise _fail(field, "enumeration", f"{text!r} is not one of: {', '.join(choices)}")
        return text

    return check


def fqdn(value: object, field: str = "fqdn") -> str:
    """A fully qualified DNS name (two or more labels, not an IP literal)."""
    text = _text(value, field)
    problem = _fqdn_problem(text)
    if problem:
        raise _fail(field, problem[0], problem[1])
    return text


def _fqdn_problem(host: str) -> tuple[str, str] | None:
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return "host-not-ip", f"host {host!r} is an IP address: a DNS name (FQDN) is required"
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or len(labels) < 2 or not all(DNS_LABEL_RE.fullmatch(label) for label in labels):
        return "host-fqdn", f"host {host!r} is not a fully qualified DNS name"
    if labels[-1].isdigit():
        return "host-fqdn", f"host {host!r} is not a fully qualified DNS name"
    return None


def url_issues(url: str, field: str) -> list[Issue]:
    """Rules every registered endpoint URL follows (https, FQDN, no userinfo/query/fragment/:443, %XX)."""
    issues: list[Issue] = []

    def add(rule: str, message: str) -> None:
        issues.append(Issue(field, rule, message))

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [Issue(field, "url-syntax", f"{url!r} is not a URL: {exc}")]
    if parts.scheme != "https":
        add("https", f"scheme must be https, not {parts.scheme or 'missing'!r}")
    host = parts.hostname or ""
    if not host:
        add("host-fqdn", "the URL has no host")
    else:
        problem = _fqdn_problem(host)
        if problem:
            add(*problem)
    if "@" in parts.netloc:
        add("no-userinfo", "the URL must not contain user information (user@)")
    if port == 443 or parts.netloc.endswith(":443"):
        add("no-explicit-443", "the URL must not declare the default port :443")
    if parts.query or url.rstrip("#").endswith("?") or "?" in url:
        add("no-query", "the URL must not contain a query (?...)")
    if parts.fragment or "#" in url:
        add("no-fragment", "the URL must not contain a fragment (#...)")
    if PCT_RE.search(url):
        add("percent-encoding", "every % must be followed by two hexadecimal digits (RFC 3986)")
    if not PATH_CHARS_RE.fullmatch(parts.path):
        add("path-characters", "the path contains characters that must be percent-encoded (RFC 3986)")
    return issues


def check_service_root_url(url: object, record_ods: str | None, field: str = "endpoint") -> list[Issue]:
    """Every rule a GP Connect FHIR service root URL breaks, one Issue each (empty list = valid).

    Form: https://[FQDN]/[ODS_CODE]/[FHIR_VERSION_NAME]/[GPC_MAJOR_VERSION][/routing segment...]
    """
    if not isinstance(url, str):
        return [Issue(field, "type", "must be a string")]
    issues = url_issues(url, field)
    if any(i.rule == "url-syntax" for i in issues):
        return issues

    def add(rule: str, message: str) -> None:
        issues.append(Issue(field, rule, message))

    path = urlsplit(url).path
    if path.endswith("/"):
        add("no-trailing-slash", "the service root URL must not end with '/'")
    segments = [s for s in path.split("/") if s]
    if len(segments) < 3:
        add(
            "service-root-form",
            "the path must be /[ODS_CODE]/[FHIR_VERSION_NAME]/[GPC_MAJOR_VERSION][/routing segment]",
        )
        return issues
    ods, version_name, major = segments[0], segments[1], segments[2]
    if record_ods is not None and ods != record_ods:
        add("ods-segment", f"the first path segment {ods!r} must equal the record's ODS code {record_ods!r}")
    if version_name.upper() in FHIR_VERSION_NAMES:
        if version_name != version_name.upper():
            add(
                "fhir-version-uppercase",
                f"the FHIR version name {version_name!r} must be upper case ({version_name.upper()!r})",
            )
    else:
        add(
            "fhir-version-name",
            f"{version_name!r} is not a FHIR version name ({', '.join(sorted(FHIR_VERSION_NAMES))})",
        )
    if not major.isdigit():
        add("gpc-major-version", f"the GP Connect major version {major!r} must be an integer")
    return issues


def service_root_url(url: object, record_ods: str | None, field: str = "endpoint") -> str:
    """Validate a service root URL; raise InvalidIdentifier listing every broken rule."""
    issues = check_service_root_url(url, record_ods, field)
    if issues:
        raise InvalidIdentifier(issues)
    assert isinstance(url, str)
    return url


#: The provider routing segments (interactions.ROUTING_SEGMENTS), longest first: what /api/resolve's service root
#: URLs end in, and what a one-call provider registration appends per capability.
ROUTING_SEGMENTS = ("gpconnect/structured", "gpconnect/documents", "gpconnect")


def split_routing_segment(url: str) -> tuple[str, str]:
    """(practice service root, routing segment) of ``url``: a URL as /api/resolve returns it, ending in a provider
    routing segment (``.../1/gpconnect/structured``), gives the root before the segment; otherwise (url, "").

    Only a segment that follows the three root segments (ODS, FHIR version, major version) counts, compared
    case-sensitively (the SSP compares endpoints as strings)."""
    path = urlsplit(url).path
    for segment in ROUTING_SEGMENTS:
        if path.endswith("/" + segment) and url.endswith("/" + segment):
            root_path = path[: -len(segment) - 1]
            if len([s for s in root_path.split("/") if s]) == 3:
                return url[: -len(segment) - 1], segment
    return url, ""


def host_of(url: str) -> str:
    """The host name of a URL (the FQDN an MHS record carries)."""
    return urlsplit(url).hostname or ""
