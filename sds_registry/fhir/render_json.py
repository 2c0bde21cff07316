"""Directory records -> a Device or Endpoint searchset Bundle's JSON text in one pass. Pure.

The searches' usual answer, written without the intermediate dicts and the generic emitter: the text is
exactly ``json_text.dumps(render.bundle(...))`` for the same records and ids (tests hold the two together over
generated records, blank and absent values included). The mapping rules are render.device's and
render.endpoints' (presence, order, first actor and owner, the intermediary address); only the writing
differs. Every fixed piece of text is cut once, at import, from ``json.dumps(indent=2)`` of a template at
its nesting level, so the layout cannot drift from the json module's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sds_registry.fhir import render

_HOLE = "\x00"  #: a template's variable value; json.dumps writes it as "\u0000"
_HOLE_TEXT = json.dumps(_HOLE)


def _cut(value: Any, level: int) -> list[str]:
    """``value``'s text (json.dumps, indent 2) as written at nesting ``level``, split at its holes.

    A nested value is the top-level text with every line break indented ``level`` steps further (strings
    hold no raw line breaks: the encoder escapes them)."""
    return json.dumps(value, indent=2).replace("\n", "\n" + "  " * level).split(_HOLE_TEXT)


def _identifier(system: str, level: int) -> tuple[str, str]:
    before, after = _cut({"system": system, "value": _HOLE}, level)
    return before, after


def _separator(level: int) -> str:
    """Between the items of a list (or the members of an object) whose items sit at ``level``."""
    return ",\n" + "  " * level


_enc: Callable[[str], str] = encode_basestring_ascii

# ---- The Bundle: head and entries (entries at level 2, their resources at level 3) ---------------------------

_HEAD = _cut({"resourceType": "Bundle", "id": _HOLE, "type": "searchset", "total": 0,
              "link": [{"relation": "self", "url": _HOLE}], "entry": []}, 0)
_TOTAL = '"total": 0'
_HEAD_ID, _HEAD_URL, _HEAD_END = _HEAD
_HEAD_URL_BEFORE_TOTAL, _HEAD_URL_AFTER_TOTAL = _HEAD_URL.split(_TOTAL)
_EMPTY_ENTRIES = '[]\n}'
assert _HEAD_END.endswith('"entry": ' + _EMPTY_ENTRIES)
_HEAD_END = _HEAD_END[: -len(_EMPTY_ENTRIES)]
_ENTRY_BEFORE_URL, _ENTRY_BEFORE_RESOURCE, _ENTRY_END = _cut(
    [{"fullUrl": _HOLE, "resource": _HOLE, "search": {"mode": "match"}}], 1)
_ENTRIES_OPEN = _ENTRY_BEFORE_URL[: _ENTRY_BEFORE_URL.index("{")]  # "[" and the first item's indent
_ENTRY_BEFORE_URL = _ENTRY_BEFORE_URL[len(_ENTRIES_OPEN):]
_ENTRIES_CLOSE = _ENTRY_END[_ENTRY_END.rindex("\n"):] + "\n}"  # the list's "]", then the Bundle's "}"
_ENTRY_END = _ENTRY_END[: _ENTRY_END.rindex("\n")]
_ENTRY_SEPARATOR = _separator(2)


def bundle(bundle_id: str, self_url: str, base_url: str, entries: Sequence[tuple[str, str]]) -> str:
    """The searchset Bundle around ``entries``: (resource id, the resource's text at level 3) pairs."""
    head = (_HEAD_ID + _enc(bundle_id) + _HEAD_URL_BEFORE_TOTAL + '"total": ' + int.__repr__(len(entries))
            + _HEAD_URL_AFTER_TOTAL + _enc(self_url) + _HEAD_END)
    if not entries:
        return head + _EMPTY_ENTRIES
    prefix = base_url + "/"
    return (head + _ENTRIES_OPEN + _ENTRY_SEPARATOR.join([
        _ENTRY_BEFORE_URL + _enc(prefix + resource_id) + _ENTRY_BEFORE_RESOURCE + text + _ENTRY_END
        for resource_id, text in entries]) + _ENTRIES_CLOSE)


# ---- Device (members at level 4) ------------------------------------------------------------------------------

_DEVICE_ID, _DEVICE_END = _cut({"resourceType": "Device", "id": _HOLE}, 3)
_MEMBER = _separator(4)
_KEY_IDENTIFIER = _MEMBER + '"identifier": '
_KEY_EXTENSION = _MEMBER + '"extension": '
_LIST_OPEN, _LIST_CLOSE = "[\n" + "  " * 5, "\n" + "  " * 4 + "]"
_ITEM = _separator(5)
_ASID = _identifier(render.ASID_SYSTEM, 5)
_PARTY_KEY = _identifier(render.PARTY_KEY_SYSTEM, 5)
_MANUFACTURER = _cut({"url": render.MANUFACTURER_EXTENSION, "valueReference": {"identifier": {
    "system": render.ODS_SYSTEM, "value": _HOLE}}}, 5)
_INTERACTION = _cut({"url": render.INTERACTION_EXTENSION, "valueReference": {"identifier": {
    "system": render.INTERACTION_SYSTEM, "value": _HOLE}}}, 5)
_BETWEEN_INTERACTIONS = _INTERACTION[1] + _separator(5) + _INTERACTION[0]
_OWNER = _cut({"owner": {"identifier": {"system": render.ODS_SYSTEM, "value": _HOLE}}}, 3)
_OWNER_BEFORE = _MEMBER + _OWNER[0][_OWNER[0].index('"owner"'):]
_OWNER_AFTER = _OWNER[1][: _OWNER[1].rindex("\n")]


def device(record: render.DeviceRecord, resource_id: str) -> str:
    """render.device's Device, as text at level 3."""
    text = _DEVICE_ID + _enc(resource_id)
    identifiers = []
    asid, party_key = record.asid, record.party_key
    if asid is not None and asid.strip():
        identifiers.append(_ASID[0] + _enc(asid) + _ASID[1])
    if party_key is not None and party_key.strip():
        identifiers.append(_PARTY_KEY[0] + _enc(party_key) + _PARTY_KEY[1])
    if identifiers:
        text += _KEY_IDENTIFIER + _LIST_OPEN + _ITEM.join(identifiers) + _LIST_CLOSE
    extensions = []
    manufacturer = record.manufacturer_org
    if manufacturer is not None and manufacturer.strip():
        extensions.append(_MANUFACTURER[0] + _enc(manufacturer) + _MANUFACTURER[1])
    interactions = [value for value in record.interactions if value is not None and value.strip()]
    if interactions:  # a Device can carry hundreds: one join, the text between two values written once
        extensions.append(_INTERACTION[0] + _BETWEEN_INTERACTIONS.join(map(_enc, interactions)) + _INTERACTION[1])
    if extensions:
        text += _KEY_EXTENSION + _LIST_OPEN + _ITEM.join(extensions) + _LIST_CLOSE
    owner = next((client for client in record.clients if client is not None and client.strip()), None)
    if owner is not None:
        text += _OWNER_BEFORE + _enc(owner) + _OWNER_AFTER
    return text + _DEVICE_END


# ---- Endpoint (members at level 4) ----------------------------------------------------------------------------

_ENDPOINT_ID, _ENDPOINT_FIXED = _cut({"resourceType": "Endpoint", "id": _HOLE, "status": "active",
                                      "connectionType": render.CONNECTION_TYPE,
                                      "payloadType": render.PAYLOAD_TYPE}, 3)
_ENDPOINT_END = _DEVICE_END  # the resource's closing brace at level 3
_ENDPOINT_FIXED = _ENDPOINT_FIXED[: -len(_ENDPOINT_END)]
_KEY_ADDRESS = _MEMBER + '"address": '
_MANAGING = _cut({"managingOrganization": {"identifier": {"system": render.ODS_SYSTEM, "value": _HOLE}}}, 3)
_MANAGING_BEFORE = _MEMBER + _MANAGING[0][_MANAGING[0].index('"managingOrganization"'):]
_MANAGING_AFTER = _MANAGING[1][: _MANAGING[1].rindex("\n")]
_MHS_IDENTIFIERS = tuple((name, _identifier(system, 5)) for name, system in (
    ("fqdn", render.FQDN_SYSTEM), ("party_key", render.PARTY_KEY_SYSTEM), ("cpa_id", render.CPA_ID_SYSTEM),
    ("unique_identifier", render.MHS_ID_SYSTEM)))
_RELIABILITY_OPEN, _RELIABILITY_CLOSE = _cut({"url": render.RELIABILITY_EXTENSION, "extension": [_HOLE]}, 5)
_PART = _separator(7)
_SYNC_REPLY, _RETRY_INTERVAL, _PERSIST, _DUPLICATES, _ACK, _ACTOR = (
    _cut({"url": name, "valueString": _HOLE}, 7) for name in (
        "nhsMHSSyncReplyMode", "nhsMHSRetryInterval", "nhsMHSPersistDuration", "nhsMHSDuplicateElimination",
        "nhsMHSAckRequested", "nhsMHSActor"))
_RETRIES = _cut({"url": "nhsMHSRetries", "valueInteger": _HOLE}, 7)


def _reliability(record: render.EndpointRecord) -> str | None:
    """render._reliability's extension, as text at level 5."""
    parts = []
    for (before, after), value in ((_SYNC_REPLY, record.sync_reply_mode), (_RETRY_INTERVAL, record.retry_interval)):
        if value is not None and value.strip():
            parts.append(before + _enc(value) + after)
    if record.retries is not None:
        parts.append(_RETRIES[0] + int.__repr__(int(record.retries)) + _RETRIES[1])
    for (before, after), value in ((_PERSIST, record.persist_duration), (_DUPLICATES, record.duplicate_elimination),
                                   (_ACK, record.ack_requested)):
        if value is not None and value.strip():
            parts.append(before + _enc(value) + after)
    # First actor only, as render._reliability (national: 500 on more).
    actor = next((a for a in record.actors if a is not None and a.strip()), None)
    if actor is not None:
        parts.append(_ACTOR[0] + _enc(actor) + _ACTOR[1])
    return _RELIABILITY_OPEN + _PART.join(parts) + _RELIABILITY_CLOSE if parts else None


def endpoints(record: render.EndpointRecord, new_id: Callable[[], str],
              address: str | None = None) -> list[tuple[str, str]]:
    """render.endpoints' Endpoints, as (id, text at level 3) pairs: one per endpoint URL, or one without an
    address when there is none; ``address`` replaces every URL (the forward intermediary)."""
    urls: list[str] | list[None] = [address] if address is not None else [
        u for u in record.endpoints if u is not None and u.strip()]
    tail = ""
    ods_code = record.ods_code
    if ods_code is not None and ods_code.strip():
        tail = _MANAGING_BEFORE + _enc(ods_code) + _MANAGING_AFTER
    identifiers = []
    for name, (before, after) in _MHS_IDENTIFIERS:
        value = getattr(record, name)
        if value is not None and value.strip():
            identifiers.append(before + _enc(value) + after)
    if identifiers:
        tail += _KEY_IDENTIFIER + _LIST_OPEN + _ITEM.join(identifiers) + _LIST_CLOSE
    extensions = []
    reliability = _reliability(record)
    if reliability is not None:
        extensions.append(reliability)
    interaction_id = record.interaction_id
    if interaction_id is not None and interaction_id.strip():
        extensions.append(_INTERACTION[0] + _enc(interaction_id) + _INTERACTION[1])
    if extensions:
        tail += _KEY_EXTENSION + _LIST_OPEN + _ITEM.join(extensions) + _LIST_CLOSE
    tail += _ENDPOINT_END
    out = []
    for url in urls or [None]:
        resource_id = new_id()
        head = _ENDPOINT_ID + _enc(resource_id) + _ENDPOINT_FIXED
        out.append((resource_id, head + _KEY_ADDRESS + _enc(url) + tail if url is not None else head + tail))
    return out
