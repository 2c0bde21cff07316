"""LDIF reading and validation (what ``ldapsearch -LLL`` prints from SDS); the import is ldif_import.py, the
export ldif_export.py (both re-exported here).

Every record is validated with the registry's own rules (``domain.records.clean_*``: the same checks the write
services run). Problems name where: the line the record starts on, the attribute and its line, the DN and the
rule; a broken line (bad base64, no colon) rejects its own record, keeping the DN, not the whole file. Pure:
no Session.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sds_registry.domain import records
from sds_registry.errors import InvalidIdentifier, Issue
from sds_registry.ldap import dit, dn, schema
from sds_registry.ldap.dit import EntryClass
from sds_registry.ldap.ldif_store import ImportReport, Pending, Rejection

#: Attributes an ldapsearch '+' dump carries that the registry keeps itself (or not at all): ignored.
IGNORED = frozenset(
    a.lower()
    for a in (
        "entryUUID",
        "creatorsName",
        "modifiersName",
        "createTimestamp",
        "modifyTimestamp",
        "entryCSN",
        "etag",
        "numSubordinates",
        "hasSubordinates",
        "structuralObjectClass",
        "subschemaSubentry",
        "entryDN",
        "pwdPolicySubentry",
        "isMemberOf",
        "contextCSN",
    )
)
_CLEAN = {"nhsAs": records.clean_accredited_system, "nhsMhs": records.clean_mhs}


# ---- reading ----------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One LDIF record as read: its DN, the line it starts on, (attribute, value, line) and what is wrong with it."""

    dn: str
    line: int
    attrs: list[tuple[str, str, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


READ = 1 << 20


def _physical_lines(stream: Iterable[str]) -> Iterator[list[str]]:
    """The lines of ``stream`` without their line ends, a batch at a time: a text stream is read a MiB at a time
    and split (no per-line Python call), any other iterable of lines is taken as it comes."""
    read = getattr(stream, "read", None)
    if read is None:
        batch: list[str] = []
        for raw in stream:
            batch.append(raw.rstrip("\n").rstrip("\r"))
            if len(batch) >= 4096:
                yield batch
                batch = []
        yield batch
        return
    tail = ""
    while True:
        text = read(READ)
        if not text:
            break
        ended_cr = tail[-1:] == "\r"  # a CR before the read's first LF: its line is stripped all the same
        lines = (tail + text).split("\n")
        tail = lines.pop()  # the unfinished last line ("" when the text ended with a line end)
        if ended_cr or "\r" in text:
            lines = [line.rstrip("\r") for line in lines]
        yield lines
    if tail:
        yield [tail.rstrip("\r")]


def _value(name: str, rest: str, number: int) -> tuple[str, str | None]:
    """(value, problem or None) of one ``name:`` line."""
    if rest.startswith(":"):
        try:
            return base64.b64decode(rest[1:].strip(), validate=True).decode("utf-8"), None
        except (binascii.Error, UnicodeDecodeError) as exc:
            return "", f"{name.strip()} (line {number}): not a base64 UTF-8 value: {exc} (rule: base64)"
    if rest.startswith("<"):
        return "", f"{name.strip()} (line {number}): URL values are not supported (rule: ldif-url)"
    return rest.lstrip(" "), None


_SPECIAL = (":", "<")  # a value starting so (after the colon) is base64 or a URL: not the common line


class _Reader:
    """The record being read; ``take`` is given each logical line (folded lines joined) with the number of the
    line it starts on, and returns a finished record at the blank line that ends it."""

    def __init__(self) -> None:
        self.entry: Entry | None = None

    def take(self, number: int, line: str) -> Entry | None:
        entry = self.entry
        name, sep, rest = line.partition(":")
        if entry is not None and sep:
            first = rest[:1]
            if first != ":" and first != "<" and not (len(name) == 10 and name.lower() == "changetype"):
                entry.attrs.append((name.strip(), rest.lstrip(" "), number))  # the common line: name: value
                return None
        if line[:1] == "#":
            return None
        if not line.strip():
            self.entry = None
            return entry
        if not sep:
            if entry is None:
                entry = self.entry = Entry("-", number)
            entry.problems.append(f"line {number}: not an LDIF line: {line[:80]!r} (rule: ldif-syntax)")
            return None
        value, problem = _value(name, rest, number)
        if entry is None:
            if name.lower() in ("version", "search", "result", "text", "matched"):
                return None  # the LDIF version line; the result trailer plain ldapsearch (without -LLL) prints
            if name.lower() != "dn":
                entry = self.entry = Entry("-", number)
                entry.problems.append(f"line {number}: record does not start with dn: {line[:80]!r} "
                                      "(rule: ldif-syntax)")
                return None
            entry = self.entry = Entry(value if problem is None else f"<dn of line {number}>", number)
            if problem:
                entry.problems.append(problem)
        elif problem:
            entry.problems.append(problem)
        elif name.lower() == "changetype":
            entry.problems.append(f"changetype (line {number}): change records are not supported (rule: ldif-content)")
        else:
            entry.attrs.append((name.strip(), value, number))
        return None


def read_records(stream: Iterable[str], first_line: int = 1) -> Iterator[Entry]:
    """Every record of an LDIF text; comments, ``version:``, folding and the ldapsearch trailer handled.
    A broken line becomes a problem of the record it is in (with its line number), not an exception.
    ``first_line``: the number of the text's first line (a piece of a bigger text, cut after an empty line)."""
    reader = _Reader()
    take = reader.take
    entry: Entry | None = None  # reader.entry, kept at hand
    current: str | None = None  # the logical line being read (a folded line goes on in the next ones)
    start = 0
    number = first_line - 1
    for lines in _physical_lines(stream):
        for line in lines:
            number += 1
            if line[:1] == " " and current is not None:
                current += line[1:]
                continue
            if current is not None:
                name, sep, rest = current.partition(":")
                if sep and entry is not None and rest[:1] not in _SPECIAL and len(name) != 10:
                    entry.attrs.append((name.strip(), rest.lstrip(" "), start))  # the common line, inline
                else:
                    done = take(start, current)
                    entry = reader.entry
                    if done is not None:
                        yield done
            current, start = line, number
    if current is not None:
        done = take(start, current)
        if done is not None:
            yield done
    if reader.entry is not None:
        yield reader.entry


def read_entries(stream: Iterable[str]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(dn, [(attribute as written, value)]) per record; ValueError (naming the line) on the first broken one."""
    for entry in read_records(stream):
        if entry.problems:
            raise ValueError(f"{entry.dn} (line {entry.line}): " + "; ".join(entry.problems))
        yield entry.dn, [(n, v) for n, v, _ in entry.attrs]


def _classify(attrs: Iterable[tuple[Any, ...]]) -> EntryClass | None:
    """The registry class of a record's (attribute, value[, line]) list, or None."""
    classes = {t[1].strip().lower() for t in attrs if len(t[0]) == 11 and t[0].lower() == "objectclass"}
    for cls in dit.ENTRY_CLASSES:
        if cls.name.lower() in classes:
            return cls
    return None


_SKIP = dit.Field("", "")
_FIELDS: dict[str, dict[str, dit.Field | None]] = {}  # class name -> attribute as written -> field


def _field(cls: EntryClass, name: str) -> dit.Field | None:
    """The field an attribute (as written in the file) goes to; _SKIP for ignored ones. Memoised."""
    known = _FIELDS.setdefault(cls.name, {})
    if name in known:
        return known[name]
    low = name.lower()
    at = schema.lookup(name)
    found: dit.Field | None
    if low == "objectclass" or low in IGNORED:
        found = _SKIP
    else:
        found = next((f for f in cls.fields if at is not None and f.attr == at.name), None)
    if len(known) < 10000:
        known[name] = found
    return found


#: class name -> attribute as written -> (field, whether it is a list), None (ignored) or _UNKNOWN; see _slot
_SLOTS: dict[str, dict[str, tuple[str, bool] | None]] = {}
_UNKNOWN = ("", False)  # the slot of an attribute the class does not hold
_NOT_SEEN = ("", True)


def _slot(cls: EntryClass, name: str) -> tuple[str, bool] | None:
    """Where an attribute (as written) goes, reduced to what ``_to_record`` needs. Memoised, bounded."""
    f = _field(cls, name)
    slot = None if f is _SKIP else _UNKNOWN if f is None else (f.field, f.child is not None)
    known = _SLOTS.setdefault(cls.name, {})
    if len(known) < 10000:
        known[name] = slot
    return slot


def _to_record(cls: EntryClass, entry: Entry) -> tuple[dict[str, Any], list[str], list[str]]:
    """Registry fields from LDAP attributes, problems as reason strings, and attributes we do not hold. Lines
    for messages are ``_lines``' (found again only for a record with something to say)."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    unknown: list[str] = []
    slots = _SLOTS.get(cls.name) or _SLOTS.setdefault(cls.name, {})
    for name, value, number in entry.attrs:
        slot = slots.get(name, _NOT_SEEN)
        if slot is _NOT_SEEN:
            slot = _slot(cls, name)
        if slot is None:
            continue
        if slot is _UNKNOWN:
            unknown.append(name)
            continue
        if value == "":
            continue  # SDS dumps print some empty values (e.g. nhsMHSRetries); LDAP has no empty strings
        field, many = slot
        if many:
            values = data.get(field)
            if values is None:
                data[field] = [value]
            else:
                values.append(value)
        elif field not in data:
            data[field] = value
        elif data[field] != value:
            f = _field(cls, name)
            problems.append(f"{f.attr if f else name} (line {number}): more than one value (rule: single-value)")
    try:
        rdn_value, parent_key = _split_dn(entry.dn)
    except dn.InvalidDN as exc:
        return data, [f"dn (line {entry.line}): {exc} (rule: dn-syntax)"], unknown
    if rdn_value is None or parent_key != cls.parent_key:
        problems.append(f"dn (line {entry.line}): must be uniqueIdentifier=<id>,{cls.parent} (rule: dn)")
    else:
        data.setdefault(cls.key_field, rdn_value)
        if data[cls.key_field].lower() != rdn_value.lower():
            problems.append(f"uniqueIdentifier: {data[cls.key_field]!r} differs from the DN (rule: rdn)")
    if cls is dit.MHS and data.get("unique_identifier") and not data.get("cpa_id"):
        data["cpa_id"] = data["unique_identifier"]
    return data, problems, unknown


def _lines(cls: EntryClass, entry: Entry) -> dict[str, list[int]]:
    """The line of every value of each field (of a single-valued one, its first), and of each attribute we do
    not hold, for messages."""
    lines: dict[str, list[int]] = {}
    for name, value, number in entry.attrs:
        f = _field(cls, name)
        if f is None:
            lines.setdefault(name, []).append(number)
        elif f is not _SKIP and value != "" and (f.child is not None or f.field not in lines):
            lines.setdefault(f.field, []).append(number)
    return lines


def _split_dn(entry_dn: str) -> tuple[str | None, tuple[Any, ...]]:
    """(uniqueIdentifier value of the RDN or None, normalised parent DN); the parent parse is cached."""
    leaf, _, parent = entry_dn.partition(",")
    if "\\" in leaf or "+" in leaf:
        rdns = dn.parse(entry_dn)
        ok = rdns and len(rdns[0]) == 1 and rdns[0][0][0] == "uniqueIdentifier"
        return (rdns[0][0][1] if ok else None), dn.normalise(rdns[1:])
    name, eq, value = leaf.partition("=")
    value = value.strip(" ")
    if not eq or not value:
        raise dn.InvalidDN(f"{entry_dn!r}: RDN {leaf!r} is not attribute=value")
    at = schema.lookup(name.strip())
    return (value if at is not None and at.name == "uniqueIdentifier" else None), dn.normalised_key(parent)


def _issue_text(cls: EntryClass, issue: Issue, lines: dict[str, list[int]]) -> str:
    base, _, index = issue.field.partition("[")
    attr = next((f.attr for f in cls.fields if f.field == base), base)
    where = attr if attr == issue.field else f"{attr} ({issue.field})"
    numbers = lines.get(base) or []
    i = int(index.rstrip("]")) if index.rstrip("]").isdigit() else 0
    if i < len(numbers):
        where += f" line {numbers[i]}"
    return f"{where}: {issue.message} (rule: {issue.rule})"


def _validate(stream: Iterable[str], report: ImportReport, lenient: bool, first_line: int = 1) -> Iterator[Pending]:
    """The valid registry records of an LDIF text, one by one; every other record goes to ``report``
    (rejected with its DN, line, attribute and rule, or skipped when it is not a registry record).
    ``first_line`` as in ``read_records``."""
    for entry in read_records(stream, first_line):
        if entry.problems:
            report.rejected.append(Rejection(entry.dn, entry.problems, entry.line))
            continue
        cls = _classify(entry.attrs)
        if cls is None:
            classes = ", ".join(v for a, v, _ in entry.attrs if a.lower() == "objectclass") or "none"
            report.skipped.append((entry.dn, f"not a registry record (objectClass: {classes})"))
            continue
        data, problems, unknown = _to_record(cls, entry)
        if unknown and not lenient:
            lines = _lines(cls, entry)
            problems += [f"{n} line {lines[n][0]}: not an attribute of {cls.name} here (rule: unknown-attribute)"
                         for n in unknown]
        try:
            if cls is dit.ORG:
                cleaned = records.clean_organisation(data)
            else:
                cleaned = _CLEAN[cls.name](data, lenient=lenient)
        except InvalidIdentifier as exc:
            lines = _lines(cls, entry)
            problems += [_issue_text(cls, i, lines) for i in exc.issues]
            cleaned = None
        if problems or cleaned is None:
            report.rejected.append(Rejection(entry.dn, problems, entry.line))
            continue
        flags = cleaned.flags + sorted({f"{n}:unknown-attribute" for n in unknown})
        yield Pending(cls, entry.dn, cleaned.values, flags, entry.line)


from sds_registry.ldap.ldif_export import export_ldif, ldif_line  # noqa: E402  (re-exported)


def __getattr__(name: str) -> Any:
    """``import_ldif`` lives in ldif_import.py (which imports this module): re-exported lazily."""
    if name == "import_ldif":
        from sds_registry.ldap.ldif_import import import_ldif

        return import_ldif
    raise AttributeError(name)


__all__ = ["Entry", "ImportReport", "Rejection", "export_ldif", "ldif_line", "read_entries",
           "read_records"]
