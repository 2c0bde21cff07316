"""FHIR resources -> JSON text: exactly what ``json.dumps(indent=2)`` writes (``indent=4`` for OperationOutcome),
several times faster than the json module's pure-Python indenting encoder, and a Bundle entry by entry for
streaming. Pure. The fixed-shape pieces render.py builds (identifiers, reference extensions, the connection and
payload types) are written from templates made once per indent and level.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sds_registry.fhir.render import CONNECTION_TYPE, PAYLOAD_TYPE, Resource, entry
from sds_registry.fhir.render import _Identifier as _Identifier
from sds_registry.fhir.render import _ReferenceExtension as _ReferenceExtension

_TEMPLATES: dict[tuple[Any, ...], tuple[str, str]] = {}


def _template(value: dict[str, Any], indents: list[str], level: int) -> tuple[str, str]:
    """(text before the value, text after it) for the fixed-shape dicts, built once per shape and level."""
    if type(value) is _ReferenceExtension:
        identifier = value["valueReference"]["identifier"]
        key: tuple[Any, ...] = ("ext", value["url"], identifier["system"], id(indents), level)
        found = _TEMPLATES.get(key)
        if found is None:
            i0, i1, i2, i3 = indents[level:level + 4]
            found = _TEMPLATES[key] = (
                "{" + i1 + '"url": ' + encode_basestring_ascii(value["url"]) + "," + i1 + '"valueReference": {'
                + i2 + '"identifier": {' + i3 + '"system": ' + encode_basestring_ascii(identifier["system"]) + ","
                + i3 + '"value": ', i2 + "}" + i1 + "}" + i0 + "}")
        return found
    key = ("id", value["system"], id(indents), level)
    found = _TEMPLATES.get(key)
    if found is None:
        i0, i1 = indents[level:level + 2]
        found = _TEMPLATES[key] = (
            "{" + i1 + '"system": ' + encode_basestring_ascii(value["system"]) + "," + i1 + '"value": ', i0 + "}")
    return found


def _templated(value: Any, indents: list[str], level: int) -> str:
    """The text of an _Identifier or a _ReferenceExtension: its template around its one variable value."""
    before, after = _template(value, indents, level)
    inner = value["valueReference"]["identifier"]["value"] if type(value) is _ReferenceExtension else value["value"]
    return before + encode_basestring_ascii(inner) + after


#: Values whose text is written once per indent and level, then reused: module constants, never mutated.
_CONSTANTS: dict[int, Any] = {id(CONNECTION_TYPE): CONNECTION_TYPE, id(PAYLOAD_TYPE): PAYLOAD_TYPE}
_CONSTANT_TEXT: dict[tuple[int, int, int], str] = {}
_TEMPLATED = (_Identifier, _ReferenceExtension)
_KEYS: dict[str, str] = {}


def _key(key: str) -> str:
    """``"key": `` (keys repeat: each is encoded once)."""
    text = _KEYS.get(key)
    if text is None:
        text = encode_basestring_ascii(key) + ": "
        if len(_KEYS) < 4096:
            _KEYS[key] = text
    return text


def _emit(value: Any, out: list[str], indents: list[str], level: int) -> None:
    """Append ``value`` as json.dumps(indent=...) writes it at nesting ``level`` (ensure_ascii, no sorting).

    Strings and the templated elements inside a dict or list are written in line, not by recursion:
    a Bundle is mostly those."""
    kind = type(value)
    if kind is str:
        out.append(encode_basestring_ascii(value))
        return
    if id(value) in _CONSTANTS and _CONSTANTS[id(value)] is value:
        key = (id(value), id(indents), level)
        text = _CONSTANT_TEXT.get(key)
        if text is None:
            pieces: list[str] = []
            (_emit_dict if isinstance(value, dict) else _emit_list)(value, pieces, indents, level)
            text = _CONSTANT_TEXT[key] = "".join(pieces)
        out.append(text)
        return
    if kind in _TEMPLATED:
        if value:
            out.append(_templated(value, indents, level))
        else:
            out.append("{}")
        return
    if isinstance(value, dict):
        _emit_dict(value, out, indents, level)
    elif isinstance(value, list | tuple):
        _emit_list(value, out, indents, level)
    elif isinstance(value, str):
        out.append(encode_basestring_ascii(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    else:
        raise TypeError(f"cannot write {type(value).__name__} as FHIR JSON")


def _emit_dict(value: dict[str, Any], out: list[str], indents: list[str], level: int) -> None:
    if not value:
        out.append("{}")
        return
    inner = indents[level + 1]
    separator = "{" + inner
    following = "," + inner
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            out.append(separator + _key(key) + encode_basestring_ascii(item))
        elif kind in _TEMPLATED and item:
            out.append(separator + _key(key) + _templated(item, indents, level + 1))
        else:
            out.append(separator + _key(key))
            _emit(item, out, indents, level + 1)
        separator = following
    out.append(indents[level] + "}")


def _emit_list(value: list[Any] | tuple[Any, ...], out: list[str], indents: list[str], level: int) -> None:
    if not value:
        out.append("[]")
        return
    inner = indents[level + 1]
    separator = "[" + inner
    following = "," + inner
    shape: tuple[str, str] | None = None
    template = ("", "")
    for item in value:
        kind = type(item)
        if kind is str:
            out.append(separator + encode_basestring_ascii(item))
        elif kind is _ReferenceExtension and len(item) == 2:
            # A Device's interactions: hundreds of these in a row, all of one shape, so the template is looked
            # up when the shape changes, in line.
            identifier = item["valueReference"]["identifier"]
            if shape is None or shape[0] != item["url"] or shape[1] != identifier["system"]:
                shape = (item["url"], identifier["system"])
                template = _template(item, indents, level + 1)
            out.append(separator + template[0] + encode_basestring_ascii(identifier["value"]) + template[1])
        elif kind in _TEMPLATED and item:
            out.append(separator + _templated(item, indents, level + 1))
        else:
            out.append(separator)
            _emit(item, out, indents, level + 1)
        separator = following
    out.append(indents[level] + "]")



_INDENTS: dict[int, list[str]] = {}


def _indents(width: int) -> list[str]:
    if width not in _INDENTS:
        _INDENTS[width] = ["\n" + " " * (width * level) for level in range(64)]
    return _INDENTS[width]


def dumps(value: Any, indent: int = 2) -> str:
    """Exactly ``json.dumps(value, indent=indent)`` for FHIR JSON values (str, int, bool, None, dict, list)."""
    out: list[str] = []
    _emit(value, out, _indents(indent), 0)
    return "".join(out)


def iter_bundle(head: Resource, base_url: str, resources: Iterable[Resource], chunk: int = 16384) -> Iterator[str]:
    """The text of ``bundle`` (head + entries), in pieces of about ``chunk`` characters, rendering entries
    as it goes: identical to ``dumps(bundle(...))`` when joined, without holding the whole text."""
    indents = _indents(2)
    out: list[str] = []
    _emit(head, out, indents, 0)
    out[-1] = out[-1][: -len(indents[0] + "}")]  # reopen the head object
    out.append("," + indents[1] + '"entry": ')
    size = 0
    opened = False
    for resource in resources:
        out.append(("," if opened else "[") + indents[2])
        opened = True
        _emit(entry(base_url, resource), out, indents, 2)
        size += 1
        if size % 8 == 0 and sum(map(len, out)) >= chunk:
            yield "".join(out)
            out = []
    out.append(indents[1] + "]" if opened else "[]")
    out.append(indents[0] + "}")
    yield "".join(out)
