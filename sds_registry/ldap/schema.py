"""The LDAP schema the directory serves: attribute types, object classes, matching rules. Pure data.

NAMEs, OIDs and matching rules follow the bench schema, bench/slapd/nhs-sds.schema (what slapd serves
on the same data), plus the OpenLDAP core/cosine attributes the DIT uses. Attributes the registry holds but
the bench schema lacks (nhsAsACF, nhsTempUid, ...) get OIDs on the next free numbers of the same arc.
Matching is described by ``Rule``: EXACT (caseExact*), IGNORE (caseIgnore*), and a few special kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

DIRECTORY_STRING = "1.3.6.1.4.1.1466.115.121.1.15"
OID_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.38"
DN_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.12"
BOOLEAN_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.7"
GENERALIZED_TIME_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.24"
POSTAL_ADDRESS_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.41"
IA5_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.26"
INTEGER_SYNTAX = "1.3.6.1.4.1.1466.115.121.1.27"

# Matching kinds (what filters.py and evaluate.py switch on).
EXACT = "exact"  # caseExactMatch / caseExactSubstringsMatch
IGNORE = "ignore"  # caseIgnoreMatch / caseIgnoreSubstringsMatch / caseIgnoreOrderingMatch
OBJECT_CLASS = "objectclass"  # objectIdentifierMatch (objectSubClassMatch for objectClass)
DN = "dn"  # distinguishedNameMatch
BOOLEAN = "boolean"  # booleanMatch
TIME = "time"  # generalizedTimeMatch / generalizedTimeOrderingMatch

# fmt: off
#: (name, OID, syntax) of the matching rules we announce and the kind each implements.
MATCHING_RULES: tuple[tuple[str, str, str, str], ...] = (
    ("caseExactMatch", "2.5.13.5", DIRECTORY_STRING, EXACT),
    ("caseExactSubstringsMatch", "2.5.13.7", "1.3.6.1.4.1.1466.115.121.1.58", EXACT),
    ("caseIgnoreMatch", "2.5.13.2", DIRECTORY_STRING, IGNORE),
    ("caseIgnoreOrderingMatch", "2.5.13.3", DIRECTORY_STRING, IGNORE),
    ("caseIgnoreSubstringsMatch", "2.5.13.4", "1.3.6.1.4.1.1466.115.121.1.58", IGNORE),
    ("objectIdentifierMatch", "2.5.13.0", OID_SYNTAX, OBJECT_CLASS),
    ("distinguishedNameMatch", "2.5.13.1", DN_SYNTAX, DN),
    ("booleanMatch", "2.5.13.13", BOOLEAN_SYNTAX, BOOLEAN),
    ("generalizedTimeMatch", "2.5.13.27", GENERALIZED_TIME_SYNTAX, TIME),
    ("generalizedTimeOrderingMatch", "2.5.13.28", GENERALIZED_TIME_SYNTAX, TIME),
    ("caseIgnoreIA5Match", "1.3.6.1.4.1.1466.109.114.2", IA5_SYNTAX, IGNORE),
    # announced (attribute types refer to them) but not usable in filters here: Undefined
    ("caseIgnoreIA5SubstringsMatch", "1.3.6.1.4.1.4203.1.2.1", "1.3.6.1.4.1.1466.115.121.1.58", ""),
    ("caseIgnoreListMatch", "2.5.13.11", POSTAL_ADDRESS_SYNTAX, ""),
    ("caseIgnoreListSubstringsMatch", "2.5.13.12", "1.3.6.1.4.1.1466.115.121.1.58", ""),
    ("telephoneNumberMatch", "2.5.13.20", "1.3.6.1.4.1.1466.115.121.1.50", ""),
    ("telephoneNumberSubstringsMatch", "2.5.13.21", "1.3.6.1.4.1.1466.115.121.1.58", ""),
    ("objectIdentifierFirstComponentMatch", "2.5.13.30", OID_SYNTAX, ""),
)
# fmt: on
_RULE_KIND = {k.lower(): kind for name, oid, _, kind in MATCHING_RULES if kind for k in (name, oid)}
#: Equality rules usable in an extensible match, by lower-case name or OID -> kind.
EQUALITY_RULES = {
    k.lower(): kind
    for name, oid, _, kind in MATCHING_RULES
    if kind and not name.endswith(("SubstringsMatch", "OrderingMatch"))
    for k in (name, oid)
}

SYNTAXES: tuple[tuple[str, str], ...] = (
    (DIRECTORY_STRING, "Directory String"),
    (OID_SYNTAX, "OID"),
    (DN_SYNTAX, "Distinguished Name"),
    (BOOLEAN_SYNTAX, "Boolean"),
    (GENERALIZED_TIME_SYNTAX, "Generalized Time"),
    (POSTAL_ADDRESS_SYNTAX, "Postal Address"),
    (IA5_SYNTAX, "IA5 String"),
    (INTEGER_SYNTAX, "INTEGER"),
    ("1.3.6.1.4.1.1466.115.121.1.50", "Telephone Number"),
    ("1.3.6.1.4.1.1466.115.121.1.3", "Attribute Type Description"),
    ("1.3.6.1.4.1.1466.115.121.1.37", "Object Class Description"),
    ("1.3.6.1.4.1.1466.115.121.1.54", "LDAP Syntax Description"),
    ("1.3.6.1.4.1.1466.115.121.1.30", "Matching Rule Description"),
    ("1.3.6.1.4.1.1466.115.121.1.58", "Substring Assertion"),
)


@dataclass(frozen=True)
class AttributeType:
    name: str
    oid: str
    equality: str | None = None  # matching-rule NAME
    substr: str | None = None
    ordering: str | None = None
    single: bool = False
    syntax: str = DIRECTORY_STRING
    operational: bool = False
    usage: str = "userApplications"
    desc: str = ""
    sup: str | None = None

    @cached_property
    def kind(self) -> str | None:
        """The matching kind of the equality rule (None: no EQUALITY rule, so equality is Undefined)."""
        return _RULE_KIND.get(self.equality.lower()) if self.equality else None

    def definition(self) -> str:
        """RFC 4512 AttributeTypeDescription, as the subschema entry publishes it."""
        parts = [f"( {self.oid} NAME '{self.name}'"]
        if self.desc:
            parts.append(f"DESC '{self.desc}'")
        if self.sup:
            parts.append(f"SUP {self.sup}")
        for word, rule in (("EQUALITY", self.equality), ("ORDERING", self.ordering), ("SUBSTR", self.substr)):
            if rule:
                parts.append(f"{word} {rule}")
        parts.append(f"SYNTAX {self.syntax}")
        if self.single:
            parts.append("SINGLE-VALUE")
        if self.operational:
            parts.append("NO-USER-MODIFICATION")
            parts.append(f"USAGE {self.usage}")
        return " ".join(parts) + " )"


def _exact(name: str, n: int, single: bool = True, desc: str = "") -> AttributeType:
    return AttributeType(
        name, f"1.3.6.1.4.1.99999.1.1.{n}", "caseExactMatch", "caseExactSubstringsMatch", single=single, desc=desc
    )


def _ignore(
    name: str, n: int, single: bool = True, substr: bool = True, ordering: bool = False, desc: str = ""
) -> AttributeType:
    return AttributeType(
        name,
        f"1.3.6.1.4.1.99999.1.1.{n}",
        "caseIgnoreMatch",
        "caseIgnoreSubstringsMatch" if substr else None,
        "caseIgnoreOrderingMatch" if ordering else None,
        single=single,
        desc=desc,
    )


_SYS = "directoryOperation"

# fmt: off

ATTRIBUTE_TYPES: tuple[AttributeType, ...] = (
    # ---- standard (core.schema / cosine.schema / RFC 4512 operational) -----------------------------------
    AttributeType("objectClass", "2.5.4.0", "objectIdentifierMatch", syntax=OID_SYNTAX),
    AttributeType("uniqueIdentifier", "0.9.2342.19200300.100.1.44", "caseIgnoreMatch"),
    AttributeType("name", "2.5.4.41", "caseIgnoreMatch", "caseIgnoreSubstringsMatch"),
    AttributeType("o", "2.5.4.10", sup="name"),
    AttributeType("ou", "2.5.4.11", sup="name"),
    AttributeType("cn", "2.5.4.3", sup="name"),
    AttributeType("l", "2.5.4.7", sup="name"),
    AttributeType("description", "2.5.4.13", "caseIgnoreMatch", "caseIgnoreSubstringsMatch"),
    AttributeType("postalAddress", "2.5.4.16", "caseIgnoreListMatch", "caseIgnoreListSubstringsMatch",
                  syntax=POSTAL_ADDRESS_SYNTAX),
    AttributeType("postalCode", "2.5.4.17", "caseIgnoreMatch", "caseIgnoreSubstringsMatch"),
    AttributeType("telephoneNumber", "2.5.4.20", "telephoneNumberMatch", "telephoneNumberSubstringsMatch",
                  syntax="1.3.6.1.4.1.1466.115.121.1.50"),
    AttributeType("mail", "0.9.2342.19200300.100.1.3", "caseIgnoreIA5Match", "caseIgnoreIA5SubstringsMatch",
                  syntax=IA5_SYNTAX),
    AttributeType("uid", "0.9.2342.19200300.100.1.1", "caseIgnoreMatch", "caseIgnoreSubstringsMatch"),
    AttributeType("dc", "0.9.2342.19200300.100.1.25", "caseIgnoreIA5Match", "caseIgnoreIA5SubstringsMatch",
                  syntax=IA5_SYNTAX, single=True),
    AttributeType("structuralObjectClass", "2.5.21.9", "objectIdentifierMatch", syntax=OID_SYNTAX, single=True,
                  operational=True, usage=_SYS),
    AttributeType("createTimestamp", "2.5.18.1", "generalizedTimeMatch", ordering="generalizedTimeOrderingMatch",
                  syntax=GENERALIZED_TIME_SYNTAX, single=True, operational=True, usage=_SYS),
    AttributeType("modifyTimestamp", "2.5.18.2", "generalizedTimeMatch", ordering="generalizedTimeOrderingMatch",
                  syntax=GENERALIZED_TIME_SYNTAX, single=True, operational=True, usage=_SYS),
    AttributeType("subschemaSubentry", "2.5.18.10", "distinguishedNameMatch", syntax=DN_SYNTAX, single=True,
                  operational=True, usage=_SYS),
    AttributeType("hasSubordinates", "2.5.18.9", "booleanMatch", syntax=BOOLEAN_SYNTAX, single=True,
                  operational=True, usage=_SYS),
    AttributeType("entryDN", "1.3.6.1.1.20", "distinguishedNameMatch", syntax=DN_SYNTAX, single=True,
                  operational=True, usage=_SYS),
    # root DSE and subschema (operational, dSAOperation)
    AttributeType("namingContexts", "1.3.6.1.4.1.1466.101.120.5", syntax=DN_SYNTAX, operational=True,
                  usage="dSAOperation"),
    AttributeType("supportedControl", "1.3.6.1.4.1.1466.101.120.13", syntax=OID_SYNTAX, operational=True,
                  usage="dSAOperation"),
    AttributeType("supportedExtension", "1.3.6.1.4.1.1466.101.120.7", syntax=OID_SYNTAX, operational=True,
                  usage="dSAOperation"),
    AttributeType("supportedLDAPVersion", "1.3.6.1.4.1.1466.101.120.15", syntax=INTEGER_SYNTAX, operational=True,
                  usage="dSAOperation"),
    AttributeType("supportedSASLMechanisms", "1.3.6.1.4.1.1466.101.120.14", operational=True,
                  usage="dSAOperation"),
    AttributeType("vendorName", "1.3.6.1.1.4", single=True, operational=True, usage="dSAOperation"),
    AttributeType("vendorVersion", "1.3.6.1.1.5", single=True, operational=True, usage="dSAOperation"),
    AttributeType("attributeTypes", "2.5.21.5", "objectIdentifierFirstComponentMatch",
                  syntax="1.3.6.1.4.1.1466.115.121.1.3", operational=True, usage=_SYS),
    AttributeType("objectClasses", "2.5.21.6", "objectIdentifierFirstComponentMatch",
                  syntax="1.3.6.1.4.1.1466.115.121.1.37", operational=True, usage=_SYS),
    AttributeType("ldapSyntaxes", "1.3.6.1.4.1.1466.101.120.16", "objectIdentifierFirstComponentMatch",
                  syntax="1.3.6.1.4.1.1466.115.121.1.54", operational=True, usage=_SYS),
    AttributeType("matchingRules", "2.5.21.4", "objectIdentifierFirstComponentMatch",
                  syntax="1.3.6.1.4.1.1466.115.121.1.30", operational=True, usage=_SYS),
    # ---- SDS, case-exact (bench schema .1-.6) --------------------------------------------------------------
    _exact("nhsIDCode", 1, desc="ODS code of the organisation the system is registered for"),
    _exact("nhsAsSvcIA", 2, single=False, desc="interaction id the accredited system is accredited for"),
    _exact("nhsMhsSvcIA", 3, desc="the one interaction id this MHS record serves"),
    _exact("nhsMHSEndPoint", 4, desc="endpoint URL (GP Connect: FHIR service root, no trailing slash)"),
    _exact("nhsMhsCPAId", 5, desc="CPA id; equals the MHS uniqueIdentifier"),
    _exact("nhsMHSActor", 6, single=False, desc="ebXML actor"),
    # ---- SDS, case-ignore (bench schema .10-.31) -----------------------------------------------------------
    _ignore("nhsMHSPartyKey", 10, desc="party key <ODS>-<digits>; links AS and MHS records"),
    _ignore("nhsAsClient", 11, single=False, desc="ODS code of an organisation using this system"),
    _ignore("nhsMhsManufacturerOrg", 12, desc="ODS code of the system supplier"),
    _ignore("nhsProductKey", 13),
    _ignore("nhsProductName", 14),
    _ignore("nhsProductVersion", 15),
    _ignore("nhsRequestorURP", 16, desc="DN of the user role profile that requested the entry"),
    _ignore("nhsDateRequested", 17, ordering=True, desc="YYYYMMDDHHMMSS"),
    _ignore("nhsApproverURP", 18, desc="DN of the approving user role profile, or System"),
    _ignore("nhsDateApproved", 19, ordering=True, desc="YYYYMMDDHHMMSS"),
    _ignore("nhsMHsSN", 20, desc="service name (prefix of nhsMhsSvcIA)"),
    _ignore("nhsMHsIN", 21, desc="interaction name (rest of nhsMhsSvcIA)"),
    _ignore("nhsMhsFQDN", 22),
    _ignore("nhsMHSIsAuthenticated", 23, substr=False, desc="none / transient / persistent"),
    _ignore("nhsMHSSyncReplyMode", 24, substr=False),
    _ignore("nhsMHSAckRequested", 25, substr=False),
    _ignore("nhsMHSDuplicateElimination", 26, substr=False),
    _ignore("nhsMHSPersistDuration", 27, substr=False, desc="ISO 8601 duration, e.g. PT5M"),
    _ignore("nhsMHSRetries", 28, substr=False, desc="integer as a string"),
    _ignore("nhsMHSRetryInterval", 29, substr=False, desc="ISO 8601 duration, e.g. PT1M"),
    _ignore("nhsEPInteractionType", 30, substr=False, desc="FHIR / ebXML / HL7 / N/A"),
    _ignore("nhsContractPropertyTemplateKey", 31, substr=False),
    # ---- held by the registry, not in the bench schema (.40 on) --------------------------------------------
    _exact("nhsAsACF", 40, single=False, desc="access control flag"),
    _ignore("nhsAsCategoryBag", 41, single=False),
    _ignore("nhsTempUid", 42),
    _ignore("nhsDNSApprover", 43),
    _ignore("nhsDateDNSApproved", 44, ordering=True, desc="YYYYMMDDHHMMSS"),
    _ignore("nhsMHSServiceDescription", 45),
    _ignore("nhsMhsIPAddress", 46),
    _ignore("nhsMhsNetwork", 47),
    _ignore("nhsMhsSinCode", 48),
    _ignore("nhsOrgType", 49),
    _ignore("nhsOrgTypeCode", 50),
)

# fmt: on

BY_NAME: dict[str, AttributeType] = {}
for _at in ATTRIBUTE_TYPES:
    BY_NAME[_at.name.lower()] = _at
    BY_NAME[_at.oid] = _at
del _at


def _inherit(at: AttributeType) -> AttributeType:
    """Subtypes without their own rules take the supertype's (o, ou, cn, l SUP name)."""
    if at.sup and not at.equality:
        sup = BY_NAME[at.sup.lower()]
        return AttributeType(
            at.name,
            at.oid,
            sup.equality,
            sup.substr,
            sup.ordering,
            at.single,
            sup.syntax,
            at.operational,
            at.usage,
            at.desc,
            at.sup,
        )
    return at


for _key, _at in list(BY_NAME.items()):
    BY_NAME[_key] = _inherit(_at)
del _key, _at

_FAMILY: dict[str, tuple[str, ...]] = {}
for _at in ATTRIBUTE_TYPES:
    if _at.sup:
        _FAMILY.setdefault(BY_NAME[_at.sup.lower()].name, (BY_NAME[_at.sup.lower()].name,))
        _FAMILY[BY_NAME[_at.sup.lower()].name] += (_at.name,)
del _at


def lookup(description: str) -> AttributeType | None:
    """The attribute type of an attribute description (name or OID, any case); None when unknown.

    Descriptions with options (``cn;lang-en``) are unknown to this server: it holds no tagged values.
    """
    return BY_NAME.get(description.lower())


def family(name: str) -> tuple[str, ...]:
    """The attribute type and its subtypes (``name``: name, o, ou, cn, l): a filter on it matches them all."""
    return _FAMILY.get(name, (name,))


def substr_kind(at: AttributeType | None) -> str | None:
    """EXACT or IGNORE for an attribute with a usable SUBSTR rule; None otherwise (substrings: Undefined)."""
    if at is None or at.substr is None:
        return None
    kind = _RULE_KIND.get(at.substr.lower())
    return kind if kind in (EXACT, IGNORE) else None


def canonical(description: str) -> str | None:
    at = lookup(description)
    return at.name if at else None


@dataclass(frozen=True)
class ObjectClass:
    name: str
    oid: str
    sup: str | None
    kind: str  # STRUCTURAL / ABSTRACT
    must: tuple[str, ...] = ()
    may: tuple[str, ...] = ()
    desc: str = ""

    def definition(self) -> str:
        parts = [f"( {self.oid} NAME '{self.name}'"]
        if self.desc:
            parts.append(f"DESC '{self.desc}'")
        if self.sup:
            parts.append(f"SUP {self.sup}")
        parts.append(self.kind)
        for word, names in (("MUST", self.must), ("MAY", self.may)):
            if len(names) == 1:
                parts.append(f"{word} {names[0]}")
            elif names:
                parts.append(f"{word} ( {' $ '.join(names)} )")
        return " ".join(parts) + " )"


# fmt: off
_AS_MAY = ("nhsAsSvcIA", "nhsAsClient", "nhsMhsManufacturerOrg", "nhsProductKey", "nhsProductName",
           "nhsProductVersion", "nhsRequestorURP", "nhsDateRequested", "nhsApproverURP", "nhsDateApproved",
           "description", "nhsAsACF", "nhsAsCategoryBag", "nhsTempUid")
_MHS_MAY = ("nhsMHsSN", "nhsMHsIN", "nhsMHSEndPoint", "nhsMhsFQDN", "nhsMhsCPAId", "nhsMHSIsAuthenticated",
            "nhsMHSSyncReplyMode", "nhsMHSAckRequested", "nhsMHSDuplicateElimination", "nhsMHSPersistDuration",
            "nhsMHSRetries", "nhsMHSRetryInterval", "nhsMHSActor", "nhsEPInteractionType",
            "nhsContractPropertyTemplateKey", "nhsMhsManufacturerOrg", "nhsProductKey", "nhsProductName",
            "nhsProductVersion", "nhsRequestorURP", "nhsDateRequested", "nhsApproverURP", "nhsDateApproved",
            "description", "nhsDNSApprover", "nhsDateDNSApproved", "nhsMHSServiceDescription", "nhsMhsIPAddress",
            "nhsMhsNetwork", "nhsMhsSinCode")

OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("top", "2.5.6.0", None, "ABSTRACT", ("objectClass",)),
    ObjectClass("organization", "2.5.6.4", "top", "STRUCTURAL", ("o",),
                ("description", "l", "postalAddress", "postalCode", "telephoneNumber")),
    ObjectClass("organizationalUnit", "2.5.6.5", "top", "STRUCTURAL", ("ou",),
                ("description", "l", "postalAddress", "postalCode", "telephoneNumber")),
    ObjectClass("subschema", "2.5.20.1", None, "AUXILIARY", (),
                ("attributeTypes", "objectClasses", "ldapSyntaxes", "matchingRules")),
    ObjectClass("subentry", "2.5.17.0", "top", "STRUCTURAL", ("cn",)),
    ObjectClass("extensibleObject", "1.3.6.1.4.1.1466.101.120.111", "top", "AUXILIARY"),
    ObjectClass("nhsAs", "1.3.6.1.4.1.99999.1.2.1", "top", "STRUCTURAL",
                ("uniqueIdentifier", "nhsIDCode", "nhsMHSPartyKey"), _AS_MAY,
                "accredited system; uniqueIdentifier holds the 12-digit ASID"),
    ObjectClass("nhsMhs", "1.3.6.1.4.1.99999.1.2.2", "top", "STRUCTURAL",
                ("uniqueIdentifier", "nhsIDCode", "nhsMHSPartyKey", "nhsMhsSvcIA"), _MHS_MAY,
                "message handling system: one endpoint for one interaction"),
    ObjectClass("nhsOrg", "1.3.6.1.4.1.99999.1.2.3", "organization", "STRUCTURAL",
                ("uniqueIdentifier", "nhsIDCode", "o"), ("nhsOrgType", "nhsOrgTypeCode"),
                "organisation (ODS code)"),
)
# fmt: on
OBJECT_CLASS_BY_NAME: dict[str, ObjectClass] = {}
for _oc in OBJECT_CLASSES:
    OBJECT_CLASS_BY_NAME[_oc.name.lower()] = _oc
    OBJECT_CLASS_BY_NAME[_oc.oid] = _oc
del _oc


def object_class(value: str) -> str | None:
    """Lower-case canonical name of an object class given by name or OID; None when unknown."""
    oc = OBJECT_CLASS_BY_NAME.get(value.strip().lower())
    return oc.name.lower() if oc else None


def superclasses(name: str) -> list[str]:
    """The class and all its superclasses, canonical spelling, most general first (top, organization, nhsOrg)."""
    chain: list[str] = []
    oc: ObjectClass | None = OBJECT_CLASS_BY_NAME[name.lower()]
    while oc is not None:
        chain.insert(0, oc.name)
        oc = OBJECT_CLASS_BY_NAME[oc.sup.lower()] if oc.sup else None
    return chain


def user_attribute(name: str) -> bool:
    at = lookup(name)
    return at is not None and not at.operational
