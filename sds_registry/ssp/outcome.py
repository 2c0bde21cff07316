"""The SSP's own OperationOutcome bodies (reference §5.4), in XML (the SSP's default) or JSON. Pure.

The SSP shape has ``coding.code`` = the HTTP status as a string, ``coding.system`` = the gpconnect schedule
response code value set, ``display`` == ``diagnostics`` == the token, a GUID ``id`` and no ``meta.profile``;
405 has the SSP's separate Method Not Allowed shape.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

from werkzeug.http import parse_accept_header

from sds_registry.services.ssp import Decision, outcome_dict

FHIR_NS = "http://hl7.org/fhir"
JSON_TYPE = "application/fhir+json;charset=utf-8"
XML_TYPE = "application/fhir+xml;charset=utf-8"


def wants_json(accept: str | None, query: str = "") -> bool:
    """JSON when the client asked for it (``_format``, or the JSON or XML type it prefers in Accept, the first
    one on a tie); otherwise XML, as the real SSP answers. Accept is read with werkzeug's parser."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "_format":
            return "json" in value.lower()
    if not accept:
        return False
    # werkzeug orders the items by preference (q, then specific before "*"; the client's order on a tie)
    for media, quality in parse_accept_header(accept):
        media = media.lower()
        if quality > 0 and ("json" in media or "xml" in media):
            return "json" in media
    return False


def _xml(data: dict[str, Any]) -> bytes:
    """FHIR XML: elements in the resource definition's order, values in ``value`` attributes."""
    root = ElementTree.Element("OperationOutcome", xmlns=FHIR_NS)
    if "id" in data:
        ElementTree.SubElement(root, "id", value=data["id"])
    for issue in data["issue"]:
        node = ElementTree.SubElement(root, "issue")
        ElementTree.SubElement(node, "severity", value=issue["severity"])
        ElementTree.SubElement(node, "code", value=issue["code"])
        details = ElementTree.SubElement(node, "details")
        for coding in issue["details"]["coding"]:
            c = ElementTree.SubElement(details, "coding")
            for key in ("system", "code", "display"):
                ElementTree.SubElement(c, key, value=coding[key])
        if "diagnostics" in issue:
            ElementTree.SubElement(node, "diagnostics", value=issue["diagnostics"])
    data_bytes: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return data_bytes


def render(decision: Decision, *, as_json: bool) -> tuple[bytes, str]:
    """(body, content type) of the refusal."""
    data = outcome_dict(decision)
    if as_json:
        return json.dumps(data, separators=(",", ":")).encode("utf-8"), JSON_TYPE
    return _xml(data), XML_TYPE
