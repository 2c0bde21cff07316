"""FHIR JSON values (as render.py builds them) -> FHIR R4 XML. Pure. An addition: the national API has no XML.

FHIR XML differs from the JSON beyond syntax: elements follow the order of the resource definition
(JSON keeps the national key order, e.g. Endpoint.identifier after managingOrganization, which in XML
must come right after extension), primitives are ``value`` attributes, and ``Extension.url`` is an
attribute. The order tables cover exactly the types the SDS API emits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sds_registry.fhir import render

FHIR_NS = "http://hl7.org/fhir"

#: element order per FHIR R4 type (the subset of elements SDS resources use, plus their neighbours).
_ORDER: dict[str, tuple[str, ...]] = {
    "Bundle": ("id", "meta", "implicitRules", "language", "identifier", "type", "timestamp", "total", "link",
               "entry", "signature"),
    "BundleLink": ("relation", "url"),
    "BundleEntry": ("link", "fullUrl", "resource", "search", "request", "response"),
    "BundleSearch": ("mode", "score"),
    "Device": ("id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
               "identifier", "definition", "udiCarrier", "status", "statusReason", "distinctIdentifier",
               "manufacturer", "manufactureDate", "expirationDate", "lotNumber", "serialNumber", "deviceName",
               "modelNumber", "partNumber", "type", "specialization", "version", "property", "patient", "owner"),
    "Endpoint": ("id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension",
                 "identifier", "status", "connectionType", "name", "managingOrganization", "contact", "period",
                 "payloadType", "payloadMimeType", "address", "header"),
    "OperationOutcome": ("id", "meta", "implicitRules", "language", "text", "contained", "extension",
                         "modifierExtension", "issue"),
    "Issue": ("severity", "code", "details", "diagnostics", "location", "expression"),
    "Identifier": ("use", "type", "system", "value", "period", "assigner"),
    "Reference": ("reference", "type", "identifier", "display"),
    "Coding": ("system", "version", "code", "display", "userSelected"),
    "CodeableConcept": ("coding", "text"),
    "Extension": ("extension", "valueString", "valueInteger", "valueReference"),
}

#: (type, element) -> the element's complex type; anything not listed is a primitive.
_CHILD: dict[tuple[str, str], str] = {
    ("Bundle", "link"): "BundleLink",
    ("Bundle", "entry"): "BundleEntry",
    ("BundleEntry", "search"): "BundleSearch",
    ("Device", "identifier"): "Identifier",
    ("Device", "extension"): "Extension",
    ("Device", "owner"): "Reference",
    ("Endpoint", "identifier"): "Identifier",
    ("Endpoint", "extension"): "Extension",
    ("Endpoint", "connectionType"): "Coding",
    ("Endpoint", "payloadType"): "CodeableConcept",
    ("Endpoint", "managingOrganization"): "Reference",
    ("Extension", "extension"): "Extension",
    ("Extension", "valueReference"): "Reference",
    ("Reference", "identifier"): "Identifier",
    ("CodeableConcept", "coding"): "Coding",
    ("OperationOutcome", "issue"): "Issue",
    ("Issue", "details"): "CodeableConcept",
}


def _attr(value: object) -> str:
    text = "true" if value is True else "false" if value is False else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;"))


def _ordered(kind: str, value: dict[str, Any]) -> list[tuple[str, Any]]:
    order = _ORDER.get(kind, ())
    rank = {name: index for index, name in enumerate(order)}
    skip = ("resourceType", "url") if kind == "Extension" else ("resourceType",)
    return sorted(((k, v) for k, v in value.items() if k not in skip), key=lambda kv: rank.get(kv[0], len(order)))


def _element(name: str, kind: str, value: dict[str, Any], out: list[str], namespace: bool = False) -> None:
    attrs = f' xmlns="{FHIR_NS}"' if namespace else ""
    if kind == "Extension" and "url" in value:
        attrs += f' url="{_attr(value["url"])}"'
    out.append(f"<{name}{attrs}>")
    for key, item in _ordered(kind, value):
        for single in item if isinstance(item, list) else [item]:
            if key == "resource" and isinstance(single, dict):
                out.append("<resource>")
                resource(single, out)
                out.append("</resource>")
            elif isinstance(single, dict):
                _element(key, _CHILD.get((kind, key), ""), single, out)
            else:
                out.append(f'<{key} value="{_attr(single)}"/>')
    out.append(f"</{name}>")


def resource(value: dict[str, Any], out: list[str], namespace: bool = False) -> None:
    kind = str(value["resourceType"])
    _element(kind, kind, value, out, namespace)


def dumps(value: dict[str, Any]) -> str:
    """One resource (with its resourceType) as a FHIR XML document."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>']
    resource(value, out, namespace=True)
    return "".join(out)


def bundle(head: dict[str, Any], base_url: str, resources: Iterable[dict[str, Any]]) -> str:
    value = dict(head)
    value["entry"] = [render.entry(base_url, r) for r in resources]
    return dumps(value)
