"""SDS FHIR API search parameters -> lookup arguments, with the national API's rules and exact 400 texts. Pure.

The rules follow the national backend (spine-directory-service-api, ``base_handler.py`` and the two
handlers; its OpenAPI spec is in tests/data/sds-fhir-api/):

- parameter names are checked in the order they first appear; an unknown name is "Illegal query
  parameter '<name>'" (``_format`` is our one addition: it picks JSON or XML, see views.py);
- every value must start with its system and ``|`` (the identifier system is one of two);
- a value is the text after the *first* ``|``; a value that is blank after the ``|`` counts as absent;
  when a system is given several times the *last* one wins;
- /Device needs ``organization`` and the interaction ``identifier``; /Endpoint needs one of four
  combinations.

Values are stripped of surrounding whitespace: the national LDAP server ignores insignificant spaces
(real traffic has ``| D83078``) and its CPM path strips them too. Nothing else is normalised: ODS codes
and interaction ids match case-exactly, party keys case-insensitively (the SDS schema's matching rules).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
INTERACTION_SYSTEM = "https://fhir.nhs.uk/Id/nhsServiceInteractionId"
PARTY_KEY_SYSTEM = "https://fhir.nhs.uk/Id/nhsMhsPartyKey"

ORGANIZATION = "organization"
IDENTIFIER = "identifier"
MANUFACTURING_ORGANIZATION = "manufacturing-organization"
FORMAT = "_format"

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID_RE = re.compile(UUID_PATTERN)


class SearchError(ValueError):
    """A 400: ``message`` is the national backend's text (the views wrap it as "HTTP 400: Bad Request (...)")."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def invalid_param(name: str, system: str) -> SearchError:
    return SearchError(f"Missing or invalid '{name}' query parameter. Should be '{name}={system}|value'")


def invalid_identifier() -> SearchError:
    # Sic: the national text has no closing bracket.
    return SearchError(
        f"Missing or invalid '{IDENTIFIER}' query parameter. Should be one or both of: ["
        f"'{IDENTIFIER}={INTERACTION_SYSTEM}|value', '{IDENTIFIER}={PARTY_KEY_SYSTEM}|value'"
    )


def invalid_endpoint_combination() -> SearchError:
    # Sic: the national text has no commas between the combinations.
    org = f"{ORGANIZATION}={ODS_SYSTEM}|value"
    party_key = f"{IDENTIFIER}={PARTY_KEY_SYSTEM}|value"
    service = f"{IDENTIFIER}={INTERACTION_SYSTEM}|value"
    return SearchError(
        "Missing or invalid query parameters. Should one of following combinations: ["
        f"'{org}&{service}&{party_key}'"
        f"'{org}&{service}'"
        f"'{org}&{party_key}'"
        f"'{service}&{party_key}'"
        "]"
    )


def invalid_correlation_id() -> SearchError:
    return SearchError(f"Invalid X-Correlation-ID header. Should be an UUIDv4 matching regex '{UUID_PATTERN}'")


def valid_correlation_id(value: str) -> bool:
    return _UUID_RE.search(value) is not None and "\n" not in value


@dataclass(frozen=True)
class DeviceQuery:
    """/Device: nhsAs records by organisation and accredited interaction, optionally party key and supplier."""

    ods_code: str
    interaction_id: str
    party_key: str | None = None
    manufacturer_org: str | None = None


@dataclass(frozen=True)
class EndpointQuery:
    """/Endpoint: nhsMhs records by (organisation, interaction, party key); at least two of them, see rules."""

    ods_code: str | None
    interaction_id: str | None
    party_key: str | None


Params = Iterable[tuple[str, str]]


def _grouped(params: Params) -> dict[str, list[str]]:
    """Values by name, names in order of first appearance (as Tornado's ``request.arguments``)."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    return grouped


def _value(values: list[str], system: str) -> str | None:
    """The last value given for ``system``: the text after the first ``|``, stripped; blank = absent."""
    found: str | None = None
    for raw in values:
        head, sep, tail = raw.strip().partition("|")
        if sep and head == system:
            tail = tail.strip()
            if tail:
                found = tail
    return found


#: Each searchable name's allowed "<system>|" prefixes (on the raw value), and the 400 for any other value.
_SYSTEMS: dict[str, tuple[tuple[str, ...], Callable[[], SearchError]]] = {
    ORGANIZATION: ((f"{ODS_SYSTEM}|",), lambda: invalid_param(ORGANIZATION, ODS_SYSTEM)),
    IDENTIFIER: ((f"{INTERACTION_SYSTEM}|", f"{PARTY_KEY_SYSTEM}|"), invalid_identifier),
    MANUFACTURING_ORGANIZATION: ((f"{ODS_SYSTEM}|",), lambda: invalid_param(MANUFACTURING_ORGANIZATION, ODS_SYSTEM)),
}


def _check_names_and_systems(grouped: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for name, values in grouped.items():
        if name not in allowed:
            raise SearchError(f"Illegal query parameter '{name}'")
        systems = _SYSTEMS.get(name)
        if systems is not None:
            prefixes, error = systems
            for value in values:
                if not value.startswith(prefixes):
                    raise error()


def parse_device(params: Params) -> DeviceQuery:
    """/Device parameters (already percent-decoded, in request order) -> DeviceQuery, or SearchError."""
    grouped = _grouped(params)
    _check_names_and_systems(grouped, (ORGANIZATION, IDENTIFIER, MANUFACTURING_ORGANIZATION, FORMAT))
    identifiers = grouped.get(IDENTIFIER, [])
    ods_code = _value(grouped.get(ORGANIZATION, []), ODS_SYSTEM)
    if ods_code is None:
        raise invalid_param(ORGANIZATION, ODS_SYSTEM)
    interaction_id = _value(identifiers, INTERACTION_SYSTEM)
    if interaction_id is None:
        raise invalid_param(IDENTIFIER, INTERACTION_SYSTEM)
    return DeviceQuery(
        ods_code=ods_code,
        interaction_id=interaction_id,
        party_key=_value(identifiers, PARTY_KEY_SYSTEM),
        manufacturer_org=_value(grouped.get(MANUFACTURING_ORGANIZATION, []), ODS_SYSTEM),
    )


def parse_endpoint(params: Params) -> EndpointQuery:
    """/Endpoint parameters -> EndpointQuery. Combinations: org+service(+party key), org+party key,
    service+party key (the last one is what the MHS adaptor sends)."""
    grouped = _grouped(params)
    _check_names_and_systems(grouped, (ORGANIZATION, IDENTIFIER, FORMAT))
    identifiers = grouped.get(IDENTIFIER, [])
    query = EndpointQuery(
        ods_code=_value(grouped.get(ORGANIZATION, []), ODS_SYSTEM),
        interaction_id=_value(identifiers, INTERACTION_SYSTEM),
        party_key=_value(identifiers, PARTY_KEY_SYSTEM),
    )
    if query.ods_code is not None and query.interaction_id is None and query.party_key is None:
        raise invalid_endpoint_combination()
    if query.ods_code is None and (query.interaction_id is None or query.party_key is None):
        raise invalid_endpoint_combination()
    return query


def format_values(params: Params) -> list[str]:
    return [value for name, value in params if name == FORMAT]


# ---- Forward reliable / express (reference §1.7) ------------------------------------------------------------

RELIABLE_INTERMEDIARY = "urn:nhs:names:services:tms:ReliableIntermediary"
EXPRESS_INTERMEDIARY = "urn:nhs:names:services:tms:ExpressIntermediary"
RELIABLE_SERVICES = frozenset(
    "cc ebs ebsepr ebsnpr gp2gp pat itk dis ed op caf adm ooh am mh nd dir".split())
FORWARD_RELIABLE_INTERACTIONS = frozenset("""
    COPC_IN000001UK01 PRSC_IN040000UK08 PRSC_IN080000UK07 PRPA_IN010000UK07 PRPA_IN020000UK06 PRSC_IN050000UK06
    PRSC_IN090000UK09 PRPA_IN030000UK08 PRSC_IN100000UK06 PRSC_IN070000UK08 PRSC_IN140000UK06 RCMR_IN010000UK05
    RCMR_IN030000UK06 PRSC_IN130000UK07 PRSC_IN110000UK08 PRSC_IN060000UK06 PRSC_IN150000UK06 POLB_IN020006UK01
    POLB_IN020005UK01 COMT_IN000004GB01 MCCI_IN010000UK13""".split())
FORWARD_EXPRESS_INTERACTIONS = frozenset({"PRSC_IN080000UK03", "PRSC_IN040000UK03"})


def forward_intermediary(interaction_id: str | None) -> str | None:
    """The intermediary interaction whose address replaces this one's, or None: ``<...>:<service>:<id>``
    with service in RELIABLE_SERVICES and id a forward reliable (or express) interaction."""
    if not interaction_id:
        return None
    parts = interaction_id.split(":")
    if len(parts) < 2 or parts[-2] not in RELIABLE_SERVICES:
        return None
    if parts[-1] in FORWARD_RELIABLE_INTERACTIONS:
        return RELIABLE_INTERMEDIARY
    if parts[-1] in FORWARD_EXPRESS_INTERACTIONS:
        return EXPRESS_INTERMEDIARY
    return None
