"""SSP authorisation decisions: may this request pass the Spine Secure Proxy? Takes a Session; never writes.

``decide`` runs the checks below in this order and answers with the first refusal (or ALLOWED). The real
SSP's order is unpublished (reference §5.3, issue #37); ours puts the checks that need no database first,
then follows the path of the request (sender, receiver, target, agreement), then the audit JWT:

 1. HTTP method is one the SSP forwards (GET, POST, PUT)      405  METHOD_NOT_ALLOWED          (405 shape)
 2. Ssp-TraceID (UUID), Ssp-From, Ssp-To (12-digit ASIDs),
    Ssp-InteractionID, Authorization: Bearer present/valid     400  MISSING_OR_INVALID_HEADER_<header>
 3. interaction ID is in the GP Connect catalogue             400  INTERACTION_ID_NOT_RECOGNISED_<id>
 4. method is the interaction's verb                          405  METHOD_<m>_NOT_ALLOWED_FOR_INTERACTION (405 shape)
 5. sender AS exists and lists the interaction (nhsAsSvcIA)   403  ASID_CHECK_FAILED_MESSAGESENDER_<from>
 6. TLS only: client certificate CN is the FQDN of an MHS
    record of the sender's party key (case-insensitive)       495  FQDN_CHECK_FAILED_MESSAGESENDER_<from>
 7. receiver AS exists and its party key has an MHS record
    for the interaction                                       403  PARTYKEY_INTERACTION_CHECK_FAILED_
                                                                   MESSAGERECEIVER_<to>
 8. target URL is under a registered endpoint of that MHS
    (string prefix, then "/", "?" or the end; so an IP for
    the host or an added ":443" does not match)               400  ENDPOINT_<ep>_CPAID_<cpa>_VARIES_FROM_
                                                                   TARGETURL_<url>
 9. a data-sharing agreement covers sender org -> receiver
    org ("*" matches any organisation)                        403  FOT_CHECK_FAILED_MESSAGESENDER_<from>_
                                                                   MESSAGERECEIVER_<to>
10. the audit JWT passes domain/audit_jwt.py's rules          400  INVALID_JWT_<RULE> (diagnostics: the token,
                                                                   then the claim and part at fault)

Every query is a probe of a named index (accredited_systems.asid, ix_as_interactions_*,
ix_message_handling_systems_interaction_id_party_key_lower / _party_key_lower, the agreements' unique pair).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from sds_registry.domain import audit_jwt as auth
from sds_registry.domain import interactions
from sds_registry.models import (
    AccreditedSystem,
    AsInteraction,
    DataSharingAgreement,
    MessageHandlingSystem,
    MhsEndpoint,
)

ALLOWED = "ALLOWED"
FORWARDED_METHODS = frozenset({"GET", "POST", "PUT"})
#: The Ssp-* headers every request needs, spelled as the GP Connect demonstrator spells them.
SSP_HEADERS = ("Ssp-TraceID", "Ssp-From", "Ssp-To", "Ssp-InteractionID")
_ASID = re.compile(r"\d{12}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

SSP_SYSTEM = "http://fhir.nhs.net/ValueSet/gpconnect-schedule-response-code-1-0"
SPINE_405_SYSTEM = "https://fhir.nhs.uk/StructureDefinition/spine-operationoutcome-1"


@dataclass(frozen=True)
class SspRequest:
    """What the SSP knows about one request. ``headers`` keys are matched case-insensitively."""

    method: str
    target_url: str
    headers: Mapping[str, str]
    #: The client certificate's CN on a mutual-TLS connection; None when the connection is not mutual TLS.
    client_cn: str | None = None
    mutual_tls: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower_name", {k.lower(): v for k, v in self.headers.items()})

    def header(self, name: str) -> str | None:
        by_lower_name: dict[str, str] = self._by_lower_name  # type: ignore[attr-defined]
        return by_lower_name.get(name.lower())


@dataclass(frozen=True)
class Decision:
    """ALLOWED, or a refusal: its HTTP status, FHIR issue type and the SSP's token."""

    outcome: str
    status: int = 200
    issue_code: str = "informational"
    #: "ssp": the §5.4 shape (token in display and diagnostics); "405": the SSP's Method Not Allowed shape.
    shape: str = "ssp"
    #: The registered endpoint and CPA id the target matched (set when allowed).
    endpoint: str | None = None
    cpa_id: str | None = None
    #: What exactly is wrong (JWT refusals: the claim and part), added to the outcome's diagnostics after the token.
    detail: str | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == ALLOWED


def refuse(status: int, issue_code: str, token: str, shape: str = "ssp", detail: str | None = None) -> Decision:
    return Decision(outcome=token, status=status, issue_code=issue_code, shape=shape, detail=detail)


def outcome_dict(decision: Decision, outcome_id: str | None = None) -> dict[str, Any]:
    """The refusal as the SSP's FHIR OperationOutcome (member order as its published examples): what the proxy
    renders (ssp/outcome.py) and /api/ssp/authorise embeds."""
    if decision.shape == "405":
        return {"resourceType": "OperationOutcome", "issue": [{
            "code": "forbidden", "severity": "fatal",
            "details": {"coding": [{"code": "405", "system": SPINE_405_SYSTEM, "display": "405: Method Not Allowed"}]},
        }]}
    return {
        "resourceType": "OperationOutcome",
        "id": outcome_id or str(uuid.uuid4()),
        "issue": [{
            "code": decision.issue_code,
            "severity": "error",
            "details": {"coding": [{"code": str(decision.status), "display": decision.outcome, "system": SSP_SYSTEM}]},
            "diagnostics": f"{decision.outcome}: {decision.detail}" if decision.detail else decision.outcome,
        }],
    }


def target_under_endpoint(target_url: str, endpoint: str) -> bool:
    """True when ``target_url`` is the endpoint or below it. Plain string comparison, as the SSP's rule
    (reference §3.6): the host may not be replaced by its IP address and no ":443" may be added."""
    if not endpoint:
        return False
    if endpoint.endswith("/"):
        return target_url.startswith(endpoint)
    if not target_url.startswith(endpoint):
        return False
    rest = target_url[len(endpoint):]
    return rest == "" or rest[0] in "/?"


_AS = AccreditedSystem
_MHS = MessageHandlingSystem
#: Sender facts in one probe: its organisation, whether it is accredited for the interaction, and whether
#: the certificate CN is the FQDN of one of its party key's MHS records.
_SENDER = (
    select(
        _AS.ods_code,
        select(AsInteraction.as_id)
        .where(AsInteraction.as_id == _AS.id, AsInteraction.interaction_id == bindparam("interaction"))
        .exists()
        .label("accredited"),
        select(_MHS.id)
        .where(func.lower(_MHS.party_key) == func.lower(_AS.party_key),
               func.lower(_MHS.fqdn) == func.lower(bindparam("cn")))
        .exists()
        .label("cn_registered"),
    )
    .where(_AS.asid == bindparam("asid"))
    .limit(1)
)
#: Receiver facts in one probe: each endpoint of its MHS record for the interaction, and whether an
#: agreement covers the sender's organisation -> the receiver's.
_RECEIVER = (
    select(
        _AS.ods_code,
        _MHS.cpa_id,
        MhsEndpoint.url,
        select(DataSharingAgreement.id)
        .where(
            DataSharingAgreement.consumer_ods.in_([bindparam("consumer"), "*"]),
            DataSharingAgreement.provider_ods.in_([_AS.ods_code, "*"]),
        )
        .exists()
        .label("agreed"),
    )
    .select_from(_AS)
    .join(_MHS, and_(_MHS.interaction_id == bindparam("interaction"),
                     func.lower(_MHS.party_key) == func.lower(_AS.party_key)))
    .outerjoin(MhsEndpoint, MhsEndpoint.mhs_id == _MHS.id)
    .where(_AS.asid == bindparam("asid"))
    .order_by(_MHS.id, MhsEndpoint.position)
)


def check_headers(request: SspRequest) -> Decision | None:
    """Checks 2: the Ssp-* headers and the bearer token are present and well formed."""
    for name in SSP_HEADERS:
        value = (request.header(name) or "").strip()
        ok = bool(value)
        if ok and name in ("Ssp-From", "Ssp-To"):
            ok = bool(_ASID.fullmatch(value))
        elif ok and name == "Ssp-TraceID":
            ok = bool(_UUID.fullmatch(value.strip("{}")))
        if not ok:
            return refuse(400, "invalid", f"MISSING_OR_INVALID_HEADER_{name}")
    if auth.bearer_token(request.header("Authorization")) is None:
        return refuse(400, "invalid", "MISSING_OR_INVALID_HEADER_Authorization")
    return None


@dataclass(frozen=True)
class Checked:
    """A request that passed checks 1-4: its parties, interaction and bearer token."""

    from_asid: str
    to_asid: str
    interaction: interactions.Interaction
    token: str


@dataclass(frozen=True)
class ReceiverEndpoint:
    url: str | None
    cpa_id: str
    agreed: bool


@dataclass(frozen=True)
class Facts:
    """What the registry says about one (sender, receiver, interaction, certificate CN): the inputs of checks
    5-9. Pure data, so the SSP may keep it for a moment (``SDS_SSP_CACHE_SECONDS``)."""

    sender_accredited: bool
    cn_registered: bool = False
    #: The receiver's MHS endpoints for the interaction, in stored order; empty when it has no MHS record.
    endpoints: tuple[ReceiverEndpoint, ...] = ()


def precheck(request: SspRequest) -> Decision | Checked:
    """Checks 1-4 (no database): a refusal, or what the later checks need."""
    method = request.method.upper()
    if method not in FORWARDED_METHODS:
        return refuse(405, "not-supported", "METHOD_NOT_ALLOWED", shape="405")
    refusal = check_headers(request)
    if refusal is not None:
        return refusal
    interaction_id = (request.header("Ssp-InteractionID") or "").strip()
    interaction = interactions.lookup(interaction_id)
    if interaction is None:
        return refuse(400, "invalid", f"INTERACTION_ID_NOT_RECOGNISED_{interaction_id}")
    if method != interaction.http_method:
        return refuse(405, "not-supported", f"METHOD_{method}_NOT_ALLOWED_FOR_INTERACTION", shape="405")
    token = auth.bearer_token(request.header("Authorization"))
    assert token is not None  # check_headers
    return Checked(from_asid=(request.header("Ssp-From") or "").strip(),
                   to_asid=(request.header("Ssp-To") or "").strip(), interaction=interaction, token=token)


def lookup_facts(conn: Connection, from_asid: str, to_asid: str, interaction_id: str, client_cn: str | None) -> Facts:
    """The registry's answers for checks 5-9: at most two index probes (Core statements, no ORM rows)."""
    sender = conn.execute(_SENDER, {"asid": from_asid, "interaction": interaction_id, "cn": client_cn or ""}).first()
    if sender is None or not sender.accredited:
        return Facts(sender_accredited=False)
    rows = conn.execute(_RECEIVER, {"asid": to_asid, "interaction": interaction_id,
                                    "consumer": sender.ods_code}).all()
    return Facts(
        sender_accredited=True, cn_registered=bool(sender.cn_registered),
        endpoints=tuple(ReceiverEndpoint(r.url, r.cpa_id, bool(r.agreed)) for r in rows),
    )


def judge(
    request: SspRequest, checked: Checked, facts: Facts, *, now: int, jwt_max_future_seconds: int = 300
) -> Decision:
    """Checks 5-10 over the registry's facts: pure."""
    if not facts.sender_accredited:
        return refuse(403, "forbidden", f"ASID_CHECK_FAILED_MESSAGESENDER_{checked.from_asid}")
    if request.mutual_tls and not (request.client_cn and facts.cn_registered):
        return refuse(495, "security", f"FQDN_CHECK_FAILED_MESSAGESENDER_{checked.from_asid}")
    if not facts.endpoints:
        return refuse(403, "forbidden", f"PARTYKEY_INTERACTION_CHECK_FAILED_MESSAGERECEIVER_{checked.to_asid}")
    matched = next((e for e in facts.endpoints
                    if e.url is not None and target_under_endpoint(request.target_url, e.url)), None)
    if matched is None or matched.url is None:
        first = facts.endpoints[0]
        return refuse(
            400, "invalid",
            f"ENDPOINT_{first.url or ''}_CPAID_{first.cpa_id}_VARIES_FROM_TARGETURL_{request.target_url}",
        )
    if not matched.agreed:
        return refuse(403, "forbidden",
                      f"FOT_CHECK_FAILED_MESSAGESENDER_{checked.from_asid}_MESSAGERECEIVER_{checked.to_asid}")
    broken = auth.explain_jwt(
        checked.token, interaction=checked.interaction, service_root_url=matched.url,
        now=now, max_future_seconds=jwt_max_future_seconds,
    )
    if broken is not None:
        return refuse(400, "invalid", broken.token, detail=broken.detail)
    return Decision(outcome=ALLOWED, endpoint=matched.url, cpa_id=matched.cpa_id)


def decide(
    session: Session, request: SspRequest, *, jwt_max_future_seconds: int = 300, now: int | None = None
) -> Decision:
    """The SSP's answer for ``request`` (see the module docstring for the order of checks)."""
    checked = precheck(request)
    if isinstance(checked, Decision):
        return checked
    facts = lookup_facts(session.connection(), checked.from_asid, checked.to_asid, checked.interaction.id,
                         request.client_cn)
    return judge(request, checked, facts, now=int(time.time()) if now is None else now,
                 jwt_max_future_seconds=jwt_max_future_seconds)
