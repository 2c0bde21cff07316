"""The FHIR facade's flat reads keep multi-valued attributes in stored order, on both backends."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sds_registry.domain.interactions import PROVIDER_DEFAULT
from sds_registry.services import directory
from sds_registry.services.accredited_systems import create_accredited_system
from sds_registry.services.registration import register_provider
from sds_registry.services.writes import CLI_ACTOR

METADATA = "urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1"


def test_accredited_system_views_keep_stored_order(session: Session) -> None:
    register_provider(session, {"ods_code": "A20047", "fqdn": "gpc.supplier.nhs.uk", "asid": "918999198993"},
                      CLI_ACTOR)
    consumer = list(reversed(PROVIDER_DEFAULT[:5]))  # deliberately not alphabetical
    create_accredited_system(session, {
        "asid": "200000000359", "ods_code": "GPC001", "party_key": "GPC001-820359", "interactions": consumer,
        "clients": ["ZZZ01", "GPC001", "AAA01"]}, CLI_ACTOR)
    create_accredited_system(session, {
        "asid": "200000000360", "ods_code": "GPC002", "party_key": "GPC002-820360", "interactions": [METADATA],
        "clients": []}, CLI_ACTOR)
    session.commit()
    [provider] = directory.find_accredited_system_views(session, ods_code="A20047", interaction_id=METADATA)
    assert provider.interactions == PROVIDER_DEFAULT and provider.clients == ("A20047",)
    assert sorted(PROVIDER_DEFAULT) != list(PROVIDER_DEFAULT)
    [system] = directory.find_accredited_system_views(session, ods_code="GPC001")
    assert system.interactions == tuple(consumer)
    assert system.clients == ("ZZZ01", "GPC001", "AAA01")
    [bare] = directory.find_accredited_system_views(session, party_key="gpc002-820360")
    assert bare.asid == "200000000360" and bare.clients == ("GPC002",)
    assert directory.find_accredited_system_views(session, ods_code="NOPE1") == []


def test_ldap_returns_multi_valued_attributes_in_stored_order(committed_session: Session) -> None:
    from sqlalchemy.engine import Engine

    from sds_registry.config import Settings
    from sds_registry.ldap import ast
    from sds_registry.ldap.directory import Directory
    from sds_registry.ldap.filterstr import parse_filter

    consumer = list(reversed(PROVIDER_DEFAULT[:5]))
    create_accredited_system(committed_session, {
        "asid": "200000000359", "ods_code": "GPC001", "party_key": "GPC001-820359", "interactions": consumer,
        "clients": ["ZZZ01", "GPC001", "AAA01"]}, CLI_ACTOR)
    committed_session.commit()
    bind = committed_session.get_bind()
    assert isinstance(bind, Engine)
    directory_ = Directory(bind, Settings())
    try:
        request = ast.SearchRequest("ou=services,o=nhs", ast.Scope.SUB, ast.DerefAliases.NEVER, 0, 0, False,
                                    parse_filter("(uniqueIdentifier=200000000359)"), ("nhsAsSvcIA", "nhsAsClient"))
        entries, result = directory_.search(request, 0, 0)
    finally:
        directory_.close()
    assert result.code == 0
    assert dict(entries[0].attributes) == {"nhsAsSvcIA": consumer, "nhsAsClient": ["ZZZ01", "GPC001", "AAA01"]}
