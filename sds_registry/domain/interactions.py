"""The GP Connect interaction catalogue (reference §4): capability, HTTP verb, path, JWT scope. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

GPC = "urn:nhs:names:services:gpconnect:"

#: Capability -> the routing segment appended to the practice's FHIR base for that capability.
ROUTING_SEGMENTS = {
    "foundations": "gpconnect",
    "appointments": "gpconnect",
    "structured": "gpconnect/structured",
    "documents": "gpconnect/documents",
    "html": "",
}


@dataclass(frozen=True)
class Interaction:
    """One interaction a GP Connect provider serves."""

    id: str
    capability: str
    http_method: str
    path_pattern: str
    requested_scope: str
    description: str
    current: bool = True  #: in the 1.6.2 lists (False: DSTU2 / historical)

    @property
    def routing_segment(self) -> str:
        return ROUTING_SEGMENTS[self.capability]


def _i(suffix: str, capability: str, verb: str, path: str, scope: str, text: str, current: bool = True) -> Interaction:
    return Interaction(GPC + suffix, capability, verb, path, scope, text, current)


CATALOGUE: tuple[Interaction, ...] = (
    # Foundations
    _i("fhir:rest:read:metadata-1", "foundations", "GET", "/metadata", "organization/*.read", "Read metadata"),
    _i("fhir:rest:read:patient-1", "foundations", "GET", "/Patient/[id]", "patient/*.read", "Read patient"),
    _i("fhir:rest:search:patient-1", "foundations", "GET", "/Patient", "patient/*.read", "Patient search"),
    _i("fhir:rest:read:practitioner-1", "foundations", "GET", "/Practitioner/[id]", "organization/*.read",
       "Read practitioner"),
    _i("fhir:rest:search:practitioner-1", "foundations", "GET", "/Practitioner", "organization/*.read",
       "Practitioner search"),
    _i("fhir:rest:read:organization-1", "foundations", "GET", "/Organization/[id]", "organization/*.read",
       "Read organisation"),
    _i("fhir:rest:search:organization-1", "foundations", "GET", "/Organization", "organization/*.read",
       "Organisation search"),
    _i("fhir:rest:read:location-1", "foundations", "GET", "/Location/[id]", "organization/*.read", "Read location"),
    _i("fhir:operation:gpc.registerpatient-1", "foundations", "POST", "/Patient/$gpc.registerpatient",
       "patient/*.write", "Register patient"),
    # Appointment Management
    _i("fhir:rest:search:slot-1", "appointments", "GET", "/Slot", "organization/*.read", "Search for free slots"),
    _i("fhir:rest:read:appointment-1", "appointments", "GET", "/Appointment/[id]", "patient/*.read",
       "Read appointment"),
    _i("fhir:rest:create:appointment-1", "appointments", "POST", "/Appointment", "patient/*.write",
       "Book appointment"),
    _i("fhir:rest:update:appointment-1", "appointments", "PUT", "/Appointment/[id]", "patient/*.write",
       "Amend appointment"),
    _i("fhir:rest:cancel:appointment-1", "appointments", "PUT", "/Appointment/[id]", "patient/*.write",
       "Cancel appointment"),
    _i("fhir:rest:search:patient_appointments-1", "appointments", "GET", "/Patient/[id]/Appointment",
       "patient/*.read", "Retrieve a patient's appointments"),
    # Access Record Structured
    _i("fhir:operation:gpc.getstructuredrecord-1", "structured", "POST", "/Patient/$gpc.getstructuredrecord",
       "patient/*.read", "Get structured record"),
    _i("fhir:operation:gpc.migratestructuredrecord-1", "structured", "POST",
       "/Patient/$gpc.migratestructuredrecord", "patient/*.read", "Migrate structured record"),
    _i("structured:fhir:rest:read:metadata-1", "structured", "GET", "/metadata", "organization/*.read",
       "Read metadata (structured)"),
    # Access Document
    _i("documents:fhir:rest:read:metadata-1", "documents", "GET", "/metadata", "organization/*.read",
       "Read metadata (documents)"),
    _i("documents:fhir:rest:search:patient-1", "documents", "GET", "/Patient", "patient/*.read",
       "Patient search (documents)"),
    _i("documents:fhir:rest:search:documentreference-1", "documents", "GET", "/Patient/[id]/DocumentReference",
       "patient/*.read", "Search for documents"),
    _i("documents:fhir:rest:read:binary-1", "documents", "GET", "/Binary/[id]", "patient/*.read",
       "Retrieve a document"),
    _i("documents:fhir:rest:migrate:binary-1", "documents", "GET", "/Binary/[id]", "patient/*.read",
       "Migrate a document"),
    # Access Record HTML (DSTU2, 0.7.x)
    _i("fhir:rest:read:metadata", "html", "GET", "/metadata", "organization/*.read", "Read metadata (DSTU2)",
       current=False),
    _i("fhir:operation:gpc.getcarerecord", "html", "POST", "/Patient/$gpc.getcarerecord", "patient/*.read",
       "Get care record (DSTU2)", current=False),
)

BY_ID: dict[str, Interaction] = {i.id: i for i in CATALOGUE}

#: The interactions a full GP Connect 1.x provider registers by default.
PROVIDER_DEFAULT: tuple[str, ...] = tuple(i.id for i in CATALOGUE if i.current)

#: Capabilities by name, with their interaction IDs (current ones).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    cap: tuple(i.id for i in CATALOGUE if i.capability == cap and i.current)
    for cap in ("foundations", "appointments", "structured", "documents")
}


def lookup(interaction_id: str) -> Interaction | None:
    """The catalogue entry for a GP Connect interaction, or None for other Spine URNs."""
    return BY_ID.get(interaction_id)


def split_service_interaction(interaction_id: str) -> tuple[str, str]:
    """(nhsMHsSN, nhsMHsIN): the service name and interaction name an MHS record carries.

    HL7 IDs split at the last colon (urn:nhs:names:services:psis / MCCI_IN010000UK13); GP Connect IDs keep
    ``urn:nhs:names:services:gpconnect`` as the service and the rest as the interaction name.
    """
    if interaction_id.startswith(GPC):
        return GPC.rstrip(":"), interaction_id[len(GPC):]
    head, _, tail = interaction_id.rpartition(":")
    return head, tail
