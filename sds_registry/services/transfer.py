"""JSON import/export of the whole directory (also the seed format). Takes a Session; never commits.

Format: one object with optional lists ``organisations``, ``providers`` (register_provider inputs),
``consumers`` (register_consumer inputs), ``accredited_systems``, ``message_handling_systems`` and
``data_sharing_agreements``. Every record goes through the registry services, so through the same
validation as the API. The caller commits only when the report has no rejections: all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sds_registry.errors import InvalidIdentifier, RegistryError
from sds_registry.models import AccreditedSystem, DataSharingAgreement, MessageHandlingSystem, Organisation
from sds_registry.services import records
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.agreements import create_agreement
from sds_registry.services.mhs import create_mhs
from sds_registry.services.organisations import create_organisation
from sds_registry.services.registration import register_consumer, register_provider
from sds_registry.services.writes import CLI_ACTOR, Actor

SECTIONS = ("organisations", "providers", "consumers", "accredited_systems", "message_handling_systems",
            "data_sharing_agreements")
_META = ("version", "created_at", "updated_at", "flags")


@dataclass
class Rejection:
    section: str
    index: int
    key: str
    reasons: list[str]


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def lines(self) -> list[str]:
        out = [f"{s}: {self.created.get(s, 0)} created, {self.skipped.get(s, 0)} already present"
               for s in SECTIONS if s in self.created or s in self.skipped]
        for r in self.rejected:
            out.append(f"REJECTED {r.section}[{r.index}] {r.key}: " + "; ".join(r.reasons))
        return out


def _exists(session: Session, section: str, item: Mapping[str, Any]) -> bool:
    if section == "organisations":
        return session.scalar(select(Organisation.id).where(Organisation.ods_code == item.get("ods_code"))) is not None
    if section in ("providers", "consumers", "accredited_systems"):
        asid = item.get("asid")
        return bool(asid) and session.scalar(
            select(AccreditedSystem.id).where(AccreditedSystem.asid == asid)) is not None
    if section == "message_handling_systems":
        key = item.get("unique_identifier") or item.get("cpa_id")
        return bool(key) and session.scalar(select(MessageHandlingSystem.id).where(
            func.lower(MessageHandlingSystem.unique_identifier) == str(key).lower())) is not None
    if section == "data_sharing_agreements":
        return session.scalar(select(DataSharingAgreement.id).where(
            DataSharingAgreement.consumer_ods == item.get("consumer_ods"),
            DataSharingAgreement.provider_ods == item.get("provider_ods"))) is not None
    return False


def _key(section: str, item: Mapping[str, Any]) -> str:
    for name in ("asid", "unique_identifier", "cpa_id", "ods_code"):
        if item.get(name):
            return f"{name}={item[name]}"
    if section == "data_sharing_agreements":
        return f"{item.get('consumer_ods')}->{item.get('provider_ods')}"
    return "?"


def import_directory(session: Session, data: Any, actor: Actor = CLI_ACTOR, *, lenient: bool = False,
                     skip_existing: bool = False) -> ImportReport:
    """Load every record in ``data``; reject (and report) each one that breaks a rule. Never commits."""
    report = ImportReport()
    if not isinstance(data, dict):
        report.rejected.append(Rejection("$", 0, "-", ["the file must hold a JSON object"]))
        return report
    for name in data:
        if name not in SECTIONS:
            report.rejected.append(Rejection(str(name), 0, "-", [f"unknown section; expected one of {SECTIONS}"]))
    creators: dict[str, Callable[[Mapping[str, Any]], object]] = {
        "organisations": lambda d: create_organisation(session, d, actor),
        "providers": lambda d: register_provider(session, d, actor),
        "consumers": lambda d: register_consumer(session, d, actor),
        "accredited_systems": lambda d: create_accredited_system(session, d, actor, lenient=lenient),
        "message_handling_systems": lambda d: create_mhs(session, d, actor, lenient=lenient),
        "data_sharing_agreements": lambda d: create_agreement(session, d, actor),
    }
    for section in SECTIONS:
        items = data.get(section) or []
        if not isinstance(items, list):
            report.rejected.append(Rejection(section, 0, "-", ["must be a list"]))
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                report.rejected.append(Rejection(section, index, "-", ["must be an object"]))
                continue
            clean = {k: v for k, v in item.items() if k not in _META}
            if skip_existing and _exists(session, section, clean):
                report.skipped[section] = report.skipped.get(section, 0) + 1
                continue
            try:
                with session.begin_nested():
                    creators[section](clean)
            except InvalidIdentifier as exc:
                reasons = [f"{i.field}: {i.message} (rule: {i.rule})" for i in exc.issues]
                report.rejected.append(Rejection(section, index, _key(section, clean), reasons))
                continue
            except RegistryError as exc:
                report.rejected.append(Rejection(section, index, _key(section, clean), [str(exc)]))
                continue
            report.created[section] = report.created.get(section, 0) + 1
    return report


def export_directory(session: Session) -> dict[str, Any]:
    """Everything, in the import format (records as stored; lenient flags dropped)."""

    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in _META and v not in (None, [])}

    return {
        "organisations": [strip(records.organisation_dict(r))
                          for r in session.scalars(select(Organisation).order_by(Organisation.ods_code))],
        "accredited_systems": [strip(records.accredited_system_dict(r)) for r in
                               session.scalars(select(AccreditedSystem).order_by(AccreditedSystem.asid))],
        "message_handling_systems": [strip(records.mhs_dict(r)) for r in session.scalars(
            select(MessageHandlingSystem).order_by(MessageHandlingSystem.unique_identifier))],
        "data_sharing_agreements": [
            {k: v for k, v in records.agreement_dict(r).items() if k in ("consumer_ods", "provider_ods", "description")
             and v is not None}
            for r in session.scalars(select(DataSharingAgreement).order_by(
                DataSharingAgreement.consumer_ods, DataSharingAgreement.provider_ods))
        ],
    }
