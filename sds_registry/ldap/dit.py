"""The directory information tree: which rows are which entries, their attributes, and the fixed entries.

Pure (no I/O). Row entries: nhsAs ``uniqueIdentifier=<ASID>,ou=Services,o=nhs``, nhsMhs
``uniqueIdentifier=<unique identifier>,ou=Services,o=nhs``, nhsOrg ``uniqueIdentifier=<ODS>,
ou=Organisations,o=nhs``. Attributes are listed in the order slapd returns them for data loaded from the
bench's LDIF (bench/ldapkit/data.py; objectClass first, then the SDS order). ``FIELDS`` maps every LDAP
attribute to the registry field it is stored in; the LDIF importer/exporter and the filter views are
built from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from sds_registry.ldap import dn, schema
from sds_registry.ldap.filters import Child, Col, Const, EntryDN, Opaque, Source, View
from sds_registry.models import (
    AccreditedSystem,
    AsAcf,
    AsCategoryBag,
    AsClient,
    AsInteraction,
    MessageHandlingSystem,
    MhsActor,
    MhsEndpoint,
    Organisation,
)

BASE = "o=nhs"
SERVICES = "ou=Services,o=nhs"
ORGANISATIONS = "ou=Organisations,o=nhs"
SUBSCHEMA = "cn=Subschema"
SERVICES_KEY = dn.normalise(dn.parse(SERVICES))
ORGANISATIONS_KEY = dn.normalise(dn.parse(ORGANISATIONS))
BASE_KEY = dn.normalise(dn.parse(BASE))
SUBSCHEMA_KEY = dn.normalise(dn.parse(SUBSCHEMA))

OPERATIONAL_ROW = (
    "structuralObjectClass",
    "entryDN",
    "createTimestamp",
    "modifyTimestamp",
    "subschemaSubentry",
    "hasSubordinates",
)


@dataclass(frozen=True)
class Field:
    """One LDAP attribute of a row entry and where it lives: a column (``field``) or a child table."""

    attr: str
    field: str  # registry field name (models, services.records)
    child: tuple[Any, str, str] | None = None  # (child model, fk column name, value column name)
    integer: bool = False


@dataclass(frozen=True)
class EntryClass:
    name: str  # object class
    model: Any
    parent: str
    key_field: str  # the RDN value (uniqueIdentifier)
    classes: tuple[str, ...]  # objectClass values
    fields: tuple[Field, ...]

    @property
    def parent_key(self) -> tuple[Any, ...]:
        return dn.normalised_key(self.parent)

    def view(self) -> View:
        table = self.model.__table__
        attrs: dict[str, Source] = {
            "objectClass": Const(self.classes),
            "structuralObjectClass": Const((self.name,)),
            "hasSubordinates": Const(("FALSE",)),
            "subschemaSubentry": Const((SUBSCHEMA,)),
            "entryDN": EntryDN(),
            "createTimestamp": Opaque(),
            "modifyTimestamp": Opaque(),
        }
        for f in self.fields:
            if f.child is not None:
                child = f.child[0].__table__
                attrs[f.attr] = Child(child, child.c[f.child[1]], child.c[f.child[2]])
            else:
                col = table.c[f.field]
                upper = self is ORG and f.field == "ods_code"  # organisations are never imported leniently
                attrs[f.attr] = Col(col, nullable=bool(col.nullable), integer=f.integer, upper=upper)
        return View(self.name, table.c.id, table.c[self.key_field], self.parent_key, attrs)

    def dn_of(self, key: str) -> str:
        return f"uniqueIdentifier={dn.escape_value(key)},{self.parent}"


def _f(attr: str, field: str, **kw: Any) -> Field:
    return Field(attr, field, **kw)


_APPROVAL = (
    _f("nhsRequestorURP", "requestor_urp"),
    _f("nhsDateRequested", "date_requested"),
    _f("nhsApproverURP", "approver_urp"),
    _f("nhsDateApproved", "date_approved"),
)

AS = EntryClass(
    "nhsAs",
    AccreditedSystem,
    SERVICES,
    "asid",
    ("top", "nhsAs"),
    (
        _f("uniqueIdentifier", "asid"),
        _f("nhsIDCode", "ods_code"),
        _f("nhsMHSPartyKey", "party_key"),
        _f("nhsAsSvcIA", "interactions", child=(AsInteraction, "as_id", "interaction_id")),
        _f("nhsAsClient", "clients", child=(AsClient, "as_id", "ods_code")),
        _f("nhsMhsManufacturerOrg", "manufacturer_org"),
        _f("nhsProductKey", "product_key"),
        _f("nhsProductName", "product_name"),
        _f("nhsProductVersion", "product_version"),
        *_APPROVAL,
        _f("description", "description"),
        _f("nhsAsACF", "acfs", child=(AsAcf, "as_id", "value")),
        _f("nhsAsCategoryBag", "category_bags", child=(AsCategoryBag, "as_id", "value")),
        _f("nhsTempUid", "temp_uid"),
    ),
)

MHS = EntryClass(
    "nhsMhs",
    MessageHandlingSystem,
    SERVICES,
    "unique_identifier",
    ("top", "nhsMhs"),
    (
        _f("uniqueIdentifier", "unique_identifier"),
        _f("nhsIDCode", "ods_code"),
        _f("nhsMHSPartyKey", "party_key"),
        _f("nhsMhsSvcIA", "interaction_id"),
        _f("nhsMHsSN", "service_name"),
        _f("nhsMHsIN", "interaction_name"),
        _f("nhsMHSEndPoint", "endpoints", child=(MhsEndpoint, "mhs_id", "url")),
        _f("nhsMhsFQDN", "fqdn"),
        _f("nhsMhsCPAId", "cpa_id"),
        _f("nhsMHSIsAuthenticated", "is_authenticated"),
        _f("nhsMHSSyncReplyMode", "sync_reply_mode"),
        _f("nhsMHSAckRequested", "ack_requested"),
        _f("nhsMHSDuplicateElimination", "duplicate_elimination"),
        _f("nhsMHSPersistDuration", "persist_duration"),
        _f("nhsMHSRetries", "retries", integer=True),
        _f("nhsMHSRetryInterval", "retry_interval"),
        _f("nhsEPInteractionType", "ep_interaction_type"),
        _f("nhsContractPropertyTemplateKey", "contract_property_template_key"),
        _f("nhsMhsManufacturerOrg", "manufacturer_org"),
        _f("nhsProductKey", "product_key"),
        _f("nhsProductName", "product_name"),
        _f("nhsProductVersion", "product_version"),
        *_APPROVAL,
        _f("nhsDNSApprover", "dns_approver"),
        _f("nhsDateDNSApproved", "date_dns_approved"),
        _f("nhsMHSActor", "actors", child=(MhsActor, "mhs_id", "value")),
        _f("nhsMHSServiceDescription", "service_description"),
        _f("nhsMhsIPAddress", "ip_address"),
        _f("nhsMhsNetwork", "network"),
        _f("nhsMhsSinCode", "sin_code"),
    ),
)

ORG = EntryClass(
    "nhsOrg",
    Organisation,
    ORGANISATIONS,
    "ods_code",
    ("top", "organization", "nhsOrg"),
    (
        _f("uniqueIdentifier", "ods_code"),
        _f("nhsIDCode", "ods_code"),
        _f("o", "name"),
        _f("nhsOrgType", "org_type"),
        _f("nhsOrgTypeCode", "org_type_code"),
        _f("postalAddress", "postal_address"),
        _f("postalCode", "postcode"),
        _f("l", "locality"),
    ),
)

SERVICE_CLASSES = (AS, MHS)
ENTRY_CLASSES = (AS, MHS, ORG)


# ---- attribute selection (RFC 4511 §4.5.1.8) -------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    all_user: bool
    all_operational: bool
    names: frozenset[str]  # canonical names asked for explicitly
    #: (canonical name, the client's spelling) for each attribute named explicitly, in request order.
    spelled: tuple[tuple[str, str], ...] = ()

    def wants(self, name: str, operational: bool) -> bool:
        return (self.all_operational if operational else self.all_user) or name in self.names

    @cached_property
    def key(self) -> tuple[Any, ...]:
        """What a query plan depends on (computed once: a selection is made once per attribute list)."""
        return (self.all_user, self.all_operational, tuple(sorted(self.names)))


@lru_cache(maxsize=512)
def selection(requested: tuple[str, ...]) -> Selection:
    """``*`` all user attributes (also an empty list), ``+`` all operational ones, ``1.1`` none when alone;
    names in any case or as OIDs; unknown names ignored."""
    all_user = not requested or any(a == "*" for a in requested)
    all_op = any(a == "+" for a in requested)
    spelled: dict[str, str] = {}
    for a in requested:
        if a not in ("*", "+", "1.1") and (at := schema.lookup(a)) and at.name not in spelled:
            spelled[at.name] = a if a[:1].isalpha() else at.name  # an OID is answered with the name
    return Selection(all_user, all_op, frozenset(spelled), tuple(spelled.items()))


def present(attrs: list[tuple[str, list[str]]], sel: Selection) -> list[tuple[str, list[str]]]:
    """As the national SDS (an OpenDJ-style server) answers: an attribute the client named is returned under
    the client's spelling of its name (``nhsMhsEndPoint`` is echoed as written, as the GP Connect worked
    example shows), and when the client listed only names, in the client's order. With ``*`` or ``+`` the
    entry order stays and the other attributes keep their canonical schema names."""
    if not sel.spelled:
        return attrs
    if sel.all_user or sel.all_operational:
        asked = dict(sel.spelled)
        return [(asked.get(name, name), values) for name, values in attrs]
    by_name = dict(attrs)
    return [(asked, by_name[name]) for name, asked in sel.spelled if name in by_name]


def select_attributes(
    attrs: Iterable[tuple[str, list[str]]], sel: Selection, types_only: bool
) -> list[tuple[str, list[str]]]:
    out = []
    for name, values in attrs:
        at = schema.lookup(name)
        operational = at.operational if at else False
        if values and sel.wants(name, operational):
            out.append((name, [] if types_only else list(values)))
    return out


# ---- fixed entries -----------------------------------------------------------------------------------------

SUPPORTED_CONTROLS = ("1.2.840.113556.1.4.319", "2.16.840.1.113730.3.4.2")  # paged results, manageDsaIT
SUPPORTED_EXTENSIONS = ("1.3.6.1.4.1.4203.1.11.3", "1.3.6.1.4.1.1466.20037")  # WhoAmI, StartTLS
FIXED_TIMESTAMP = "20240101000000Z"


def _operational(entry_dn: str, structural: str, children: bool) -> list[tuple[str, list[str]]]:
    return [
        ("structuralObjectClass", [structural]),
        ("entryDN", [entry_dn]),
        ("createTimestamp", [FIXED_TIMESTAMP]),
        ("modifyTimestamp", [FIXED_TIMESTAMP]),
        ("subschemaSubentry", [SUBSCHEMA]),
        ("hasSubordinates", ["TRUE" if children else "FALSE"]),
    ]


def base_entry() -> list[tuple[str, list[str]]]:
    return [("objectClass", ["top", "organization"]), ("o", ["nhs"]), *_operational(BASE, "organization", True)]


def ou_entry(name: str, children: bool) -> list[tuple[str, list[str]]]:
    return [
        ("objectClass", ["top", "organizationalUnit"]),
        ("ou", [name]),
        *_operational(f"ou={name},o=nhs", "organizationalUnit", children),
    ]


def root_dse() -> list[tuple[str, list[str]]]:
    return [
        ("objectClass", ["top", "OpenLDAProotDSE"]),
        ("structuralObjectClass", ["OpenLDAProotDSE"]),
        ("namingContexts", [BASE]),
        ("supportedControl", list(SUPPORTED_CONTROLS)),
        ("supportedExtension", list(SUPPORTED_EXTENSIONS)),
        ("supportedLDAPVersion", ["3"]),
        ("vendorName", ["sds-registry"]),
        ("entryDN", [""]),
        ("subschemaSubentry", [SUBSCHEMA]),
    ]


def subschema_entry() -> list[tuple[str, list[str]]]:
    return [
        ("objectClass", ["top", "subentry", "subschema", "extensibleObject"]),
        ("cn", ["Subschema"]),
        ("structuralObjectClass", ["subentry"]),
        ("createTimestamp", [FIXED_TIMESTAMP]),
        ("modifyTimestamp", [FIXED_TIMESTAMP]),
        ("ldapSyntaxes", [f"( {oid} DESC '{desc}' )" for oid, desc in schema.SYNTAXES]),
        (
            "matchingRules",
            [f"( {oid} NAME '{name}' SYNTAX {syntax} )" for name, oid, syntax, _ in schema.MATCHING_RULES],
        ),
        ("attributeTypes", [at.definition() for at in schema.ATTRIBUTE_TYPES]),
        ("objectClasses", [oc.definition() for oc in schema.OBJECT_CLASSES]),
        ("entryDN", [SUBSCHEMA]),
        ("subschemaSubentry", [SUBSCHEMA]),
    ]


def as_mapping(attrs: Iterable[tuple[str, list[str]]]) -> dict[str, list[str]]:
    return {name: values for name, values in attrs}
