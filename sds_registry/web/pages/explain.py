"""Plain words for the web pages: an SSP outcome token as a sentence, a lenient-import flag as a sentence, and an
MHS record's validation status. Pure: no Flask, no database."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sds_registry.domain import formats
from sds_registry.domain.interactions import lookup

_REFUSALS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(pattern), words) for pattern, words in (
    (r"ALLOWED", "Allowed: the registry knows both parties, and the request went on to the provider."),
    (r"MISSING_OR_INVALID_HEADER_(?P<h>.+)",
     "Refused: the {h} header was missing or malformed (Ssp-TraceID must be a UUID, Ssp-From and Ssp-To "
     "12-digit ASIDs, Authorization 'Bearer <audit JWT>')."),
    (r"INTERACTION_ID_NOT_RECOGNISED_(?P<i>.*)", "Refused: the interaction '{i}' is not in the catalogue."),
    (r"METHOD_NOT_ALLOWED", "Refused: the SSP forwards only GET, POST and PUT."),
    (r"METHOD_(?P<m>[A-Z]+)_NOT_ALLOWED_FOR_INTERACTION",
     "Refused: {m} is not the HTTP method of this interaction (see the interaction catalogue)."),
    (r"ASID_CHECK_FAILED_MESSAGESENDER_(?P<a>.*)",
     "Refused: the sender, ASID {a}, has no accredited system listing this interaction. Register the consumer "
     "(or add the interaction to its accredited system)."),
    (r"FQDN_CHECK_FAILED_MESSAGESENDER_(?P<a>.*)",
     "Refused: the client certificate's CN is not the FQDN of any MHS record of the sender, ASID {a} (register "
     "the consumer with its certificate's FQDN)."),
    (r"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_(?P<a>.*)",
     "Refused: the receiver, ASID {a}, has no MHS record (no endpoint) for this interaction under its party key."),
    (r"ENDPOINT_(?P<e>.*)_CPAID_(?P<c>.*)_VARIES_FROM_TARGETURL_(?P<t>.*)",
     "Refused: the target URL {t} is neither the receiver's registered endpoint {e} (CPA id {c}) nor below it."),
    (r"FOT_CHECK_FAILED_MESSAGESENDER_(?P<a>.*)_MESSAGERECEIVER_(?P<b>.*)",
     "Refused: no data-sharing agreement lets the organisation of ASID {a} call the organisation of ASID {b}."),
    (r"INVALID_JWT_(?P<r>.*)",
     "Refused: the audit JWT breaks the rule {r} (the SSP checks every claim; see the SSP section of the README)."),
    (r"ERROR_COMMUNICATING_TO_ENDPOINT_URL_(?P<u>.*)",
     "Allowed, but the provider at {u} could not be reached (502)."),
    (r"TIMEOUT_COMMUNICATING_TO_ENDPOINT_URL_(?P<u>.*)",
     "Allowed, but the provider at {u} did not answer in time (504)."),
    (r"INTERNAL_SERVER_ERROR.*", "The SSP failed on this request (500): its log has the details."),
))


def refusal(outcome: str) -> str:
    """One sentence saying what an SSP outcome token means for the caller."""
    for pattern, words in _REFUSALS:
        match = pattern.fullmatch(outcome)
        if match:
            parts = {k: (v.replace("_", " ").lower() if k == "r" else v) for k, v in match.groupdict().items()}
            return words.format(**parts)
    return f"Refused with the token {outcome}."


#: Lenient-import flags (``field:rule``, domain/records.py) in words; the field is named before them.
_FLAG_WORDS = {
    "https": "is not an https URL",
    "host-fqdn": "does not name a fully qualified DNS host",
    "no-userinfo": "holds user information (user@)",
    "no-explicit-443": "names the default port :443",
    "no-query": "holds a query (?...)",
    "no-fragment": "holds a fragment (#...)",
    "percent-encoding": "has a % not followed by two hexadecimal digits",
    "path-characters": "has characters in its path that should be percent-encoded",
    "url-syntax": "is not a URL",
    "no-trailing-slash": "ends with '/' (a service root URL must not)",
    "service-root-form": "is not of the form https://FQDN/ODS/FHIR_VERSION/MAJOR_VERSION",
    "ods-segment": "names another ODS code in its path than the record's",
    "fhir-version-uppercase": "writes the FHIR version name in lower case",
    "fhir-version-name": "names no FHIR version (DSTU2, STU3, R4)",
    "gpc-major-version": "has a GP Connect major version that is not a number",
    "format": "breaks its format rule",
}


def flag(code: str) -> str:
    """A flag ``field:rule`` as a sentence: ``endpoints[0]:no-trailing-slash`` -> "endpoints[0] ends with '/' ..."."""
    field, _, rule = code.rpartition(":")
    words = _FLAG_WORDS.get(rule, f"breaks the rule '{rule}'")
    return f"{field or 'the record'} {words}"


def mhs_status(ods_code: str, interaction_id: str, endpoints: Sequence[str], flags: str | None) -> list[str]:
    """What is wrong with an MHS record, in words (empty: it conforms). GP Connect endpoints are checked against
    today's service root URL rules; flags a lenient import stored are added when no check said the same."""
    problems: list[str] = []
    rules: set[str] = set()
    if lookup(interaction_id) is not None:
        for index, url in enumerate(endpoints):
            for issue in formats.check_service_root_url(url, ods_code, f"endpoints[{index}]"):
                rules.add(issue.rule)
                problems.append(f"{issue.field}: {issue.message}")
    for code in (flags or "").split():
        if code.rpartition(":")[2] not in rules:
            problems.append(flag(code))
    return problems
