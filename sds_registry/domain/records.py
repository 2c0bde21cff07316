"""Record-level validation for accredited systems, MHS records and organisations: every field and cross-field rule.

Pure. Input is a plain dict (snake_case field names, as the models name them); output is the cleaned
dict. Every broken rule is collected and raised together as one InvalidIdentifier. In lenient mode
(imports of real dumps) value rules are recorded as flags instead, and the raw value is kept; missing
required fields and wrong types still fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sds_registry.domain import formats
from sds_registry.domain.interactions import GPC, split_service_interaction
from sds_registry.errors import InvalidIdentifier, Issue

Validator = Callable[[object, str], object]
_CONTROL_RE = re.compile(r"[\x00-\x1f]")


def _free_text(max_len: int) -> Validator:
    def check(value: object, name: str) -> str:
        if not isinstance(value, str):
            raise InvalidIdentifier.single(name, "type", "must be a string")
        if not value.strip():
            raise InvalidIdentifier.single(name, "not-empty", "must not be empty")
        if len(value) > max_len:
            raise InvalidIdentifier.single(name, "max-length", f"must be at most {max_len} characters")
        if _CONTROL_RE.search(value):
            raise InvalidIdentifier.single(name, "no-control-characters", "must not contain control characters")
        return value

    return check


def _digits(max_len: int) -> Validator:
    def check(value: object, name: str) -> str:
        text = _free_text(max_len)(value, name)
        assert isinstance(text, str)
        if not text.isdigit():
            raise InvalidIdentifier.single(name, "digits", f"{text!r} must be digits only")
        return text

    return check


def _integer(minimum: int, maximum: int) -> Validator:
    def check(value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            else:
                raise InvalidIdentifier.single(name, "integer", "must be an integer")
        if not minimum <= value <= maximum:
            raise InvalidIdentifier.single(name, "range", f"must be between {minimum} and {maximum}")
        return value

    return check


def _client_code(value: object, name: str) -> str:
    # nhsAsClient holds ODS codes of client organisations; real data has 3-9 letters/digits.
    return formats.ods_code(value, name)


@dataclass(frozen=True)
class RecordSpec:
    """Field validators of one record type; ``lists`` are multi-valued fields."""

    name: str
    required: frozenset[str]
    scalars: Mapping[str, Validator]
    lists: Mapping[str, Validator] = field(default_factory=dict)
    nonempty_lists: frozenset[str] = frozenset()


_URP = _free_text(255)
_DATE = formats.spine_date

AS_SPEC = RecordSpec(
    name="accredited_system",
    required=frozenset({"asid", "ods_code", "party_key"}),
    scalars={
        "asid": formats.asid,
        "ods_code": formats.ods_code,
        "party_key": formats.party_key,
        "manufacturer_org": formats.ods_code,
        "product_key": _digits(20),
        "product_name": _free_text(255),
        "product_version": _free_text(255),
        "description": _free_text(2000),
        "requestor_urp": _URP,
        "date_requested": _DATE,
        "approver_urp": _URP,
        "date_approved": _DATE,
        "temp_uid": _digits(20),
    },
    lists={
        "interactions": formats.interaction_id,
        "clients": _client_code,
        "acfs": _free_text(40),
        "category_bags": _free_text(255),
    },
    nonempty_lists=frozenset({"interactions"}),
)

MHS_SPEC = RecordSpec(
    name="message_handling_system",
    required=frozenset({"ods_code", "party_key", "interaction_id", "endpoints"}),
    scalars={
        "unique_identifier": formats.cpa_id,
        "cpa_id": formats.cpa_id,
        "ods_code": formats.ods_code,
        "party_key": formats.party_key,
        "interaction_id": formats.interaction_id,
        "service_name": _free_text(255),
        "interaction_name": _free_text(255),
        "fqdn": formats.fqdn,
        "is_authenticated": formats.one_of(formats.IS_AUTHENTICATED),
        "sync_reply_mode": formats.one_of(formats.SYNC_REPLY_MODES),
        "ack_requested": formats.one_of(formats.ALWAYS_NEVER),
        "duplicate_elimination": formats.one_of(formats.ALWAYS_NEVER),
        "persist_duration": formats.duration,
        "retries": _integer(0, 1000),
        "retry_interval": formats.duration,
        "ep_interaction_type": formats.one_of(formats.EP_INTERACTION_TYPES),
        "contract_property_template_key": _digits(20),
        "product_key": _digits(20),
        "product_name": _free_text(255),
        "product_version": _free_text(255),
        "manufacturer_org": formats.ods_code,
        "requestor_urp": _URP,
        "date_requested": _DATE,
        "approver_urp": _URP,
        "date_approved": _DATE,
        "dns_approver": _URP,
        "date_dns_approved": _DATE,
        "service_description": _free_text(2000),
        "ip_address": _free_text(45),
        "network": _free_text(100),
        "sin_code": _free_text(100),
    },
    lists={"endpoints": _free_text(2000), "actors": formats.interaction_id},
    nonempty_lists=frozenset({"endpoints"}),
)

ORG_SPEC = RecordSpec(
    name="organisation",
    required=frozenset({"ods_code", "name"}),
    scalars={
        "ods_code": formats.ods_code,
        "name": _free_text(255),
        "org_type": _free_text(100),
        "org_type_code": _free_text(10),
        "postal_address": _free_text(1000),
        "postcode": _free_text(10),
        "locality": _free_text(100),
    },
)

#: Values a validator passed, keyed by (validator, value): the validators are pure functions of the value (the
#: field name only goes into error messages), and a bulk load repeats most values (interactions, hosts, suppliers,
#: settings), so each distinct one is checked once. Only passes are kept; bounded (cleared when full).
_PASSED: dict[tuple[Validator, str], object] = {}
_PASSED_MAX = 1 << 14  # 16,384: at 65,536 unique values (ids, URPs) churned 11 MiB more for no speed


def _checked(check: Validator, value: object, name: str, index: int = -1) -> object:
    """``check(value, name)`` (``name[index]`` for a list item), or what it returned for the same value before."""
    if type(value) is not str:
        return check(value, name if index < 0 else f"{name}[{index}]")
    key = (check, value)
    try:
        return _PASSED[key]
    except KeyError:
        pass
    out = check(value, name if index < 0 else f"{name}[{index}]")
    if len(_PASSED) >= _PASSED_MAX:
        _PASSED.clear()
    _PASSED[key] = out
    return out


_ABSENT = object()

#: Type/shape rules that lenient mode never waives.
_HARD_RULES = frozenset({"type", "required", "integer", "not-empty", "unknown-field"})


@dataclass
class Cleaned:
    values: dict[str, Any]
    flags: list[str]


def clean(spec: RecordSpec, data: Mapping[str, Any], *, partial: bool = False, lenient: bool = False) -> Cleaned:
    """Validate ``data`` against ``spec``; return cleaned values and (lenient) flags, or raise every issue."""
    issues: list[Issue] = []
    out: dict[str, Any] = {}
    if not data.keys() <= spec.scalars.keys() | spec.lists.keys():
        issues += [Issue(name, "unknown-field", f"{name!r} is not a field of {spec.name}")
                   for name in data if name not in spec.scalars and name not in spec.lists]
    if not partial:
        for name in sorted(spec.required):
            if data.get(name) in (None, "", []):
                issues.append(Issue(name, "required", "is required"))
    passed = _PASSED
    for name, check in spec.scalars.items():
        value = data.get(name, _ABSENT)
        if value is _ABSENT:
            continue
        if value is None:
            out[name] = None
            continue
        if type(value) is str:  # _checked's memo, looked at here first: most values of a bulk load are in it
            hit = passed.get((check, value), _ABSENT)
            if hit is not _ABSENT:
                out[name] = hit
                continue
        try:
            out[name] = _checked(check, value, name)
        except InvalidIdentifier as exc:
            issues.extend(exc.issues)
            out[name] = value
    for name, check in spec.lists.items():
        if name not in data or data[name] is None:
            continue
        values = data[name]
        if not isinstance(values, list | tuple):
            issues.append(Issue(name, "type", "must be a list"))
            continue
        if name in spec.nonempty_lists and not values:
            issues.append(Issue(name, "required", "must hold at least one value"))
        cleaned: list[Any] = []
        for index, value in enumerate(values):
            try:
                cleaned.append(_checked(check, value, name, index))
            except InvalidIdentifier as exc:
                issues.extend(exc.issues)
                cleaned.append(value)
        if len(set(cleaned)) != len(cleaned):
            issues.append(Issue(name, "unique-values", "must not repeat a value"))
        out[name] = cleaned
    return _settle(out, issues, lenient)


def _settle(out: dict[str, Any], issues: list[Issue], lenient: bool) -> Cleaned:
    hard = [i for i in issues if i.rule in _HARD_RULES]
    if issues and (not lenient or hard):
        raise InvalidIdentifier(hard if lenient else issues)
    return Cleaned(out, sorted({f"{i.field}:{i.rule}" for i in issues}))


def clean_accredited_system(data: Mapping[str, Any], *, partial: bool = False, lenient: bool = False) -> Cleaned:
    """An nhsAs record: field rules, plus the party key's ODS prefix being a plausible ODS code."""
    return clean(AS_SPEC, data, partial=partial, lenient=lenient)


def clean_mhs(data: Mapping[str, Any], *, lenient: bool = False) -> Cleaned:
    """A whole nhsMhs record (not partial): field rules, then the endpoint rules for its interaction.

    GP Connect interactions need a FHIR service root URL whose ODS segment is the record's nhsIDCode;
    other interactions (ebXML/HL7 Spine services) need an https URL following the general rules.
    Derived fields (service/interaction name, FQDN, unique identifier) are filled in when absent.
    """
    result = clean(MHS_SPEC, data, lenient=lenient)
    values, flags = result.values, result.flags
    issues: list[Issue] = []
    interaction = values.get("interaction_id")
    ods = values.get("ods_code")
    gpc = isinstance(interaction, str) and interaction.startswith(GPC)
    for index, url in enumerate(values.get("endpoints") or []):
        issues.extend(_endpoint_issues(url, ods if isinstance(ods, str) else None, gpc, index))
    if isinstance(interaction, str):
        sn, iname = split_service_interaction(interaction)
        values.setdefault("service_name", sn)
        values.setdefault("interaction_name", iname)
        values["service_name"] = values["service_name"] or sn
        values["interaction_name"] = values["interaction_name"] or iname
    if not values.get("fqdn") and values.get("endpoints"):
        host = formats.host_of(values["endpoints"][0])
        if host:
            values["fqdn"] = host
    if values.get("cpa_id") and not values.get("unique_identifier"):
        values["unique_identifier"] = values["cpa_id"]
    if issues:
        settled = _settle(values, issues, lenient)
        flags = sorted(set(flags) | set(settled.flags))
    return Cleaned(values, flags)


_ENDPOINTS: dict[tuple[object, str | None, bool, int], tuple[Issue, ...]] = {}


def _endpoint_issues(url: object, ods: str | None, gpc: bool, index: int) -> tuple[Issue, ...]:
    """The endpoint rules ``url`` breaks (a GP Connect service root's when ``gpc``); memoised, bounded, as _PASSED."""
    key = (url, ods, gpc, index)
    try:
        return _ENDPOINTS[key]
    except (KeyError, TypeError):
        pass
    name = f"endpoints[{index}]"
    if gpc:
        found = tuple(formats.check_service_root_url(url, ods, name))
    else:
        assert isinstance(url, str)  # clean() let only strings through
        found = tuple(formats.url_issues(url, name))
    if type(url) is str:
        if len(_ENDPOINTS) >= _PASSED_MAX:
            _ENDPOINTS.clear()
        _ENDPOINTS[key] = found
    return found


def clean_organisation(data: Mapping[str, Any], *, partial: bool = False) -> Cleaned:
    return clean(ORG_SPEC, data, partial=partial)
