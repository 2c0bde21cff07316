"""The Directory behind the real LDAP server: ldap3 get_info=ALL reads the root DSE and the schema;
the GP Connect lookups are index probes on both backends (EXPLAIN)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.ldapkit import data as kit_data
from sds_registry.config import Settings
from sds_registry.ldap import ast
from sds_registry.ldap.directory import Directory
from sds_registry.ldap.filterstr import parse_filter
from sds_registry.ldap.ldif import import_ldif
from tests.support.ldap import base_settings, running_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3


@pytest.fixture
def directory(db: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    data = tmp_path_factory.mktemp("wire")
    kit_data.write(kit_data.generate(30), data)
    with Session(db) as s:
        assert import_ldif(s, data / "sds.ldif").ok
        s.commit()
    d = Directory(db, Settings())
    yield d
    d.close()


def test_ldap3_get_info_all_parses_root_dse_and_schema(directory: Directory) -> None:
    with running_server(base_settings(), directory) as srv:
        server = ldap3.Server(srv.host, port=srv.port, get_info=ldap3.ALL)
        conn = ldap3.Connection(server, auto_bind=True)
        try:
            info, schema = server.info, server.schema
            assert info is not None and schema is not None
            assert info.naming_contexts == ["o=nhs"]
            assert 3 in info.supported_ldap_versions or "3" in info.supported_ldap_versions
            assert "1.2.840.113556.1.4.319" in [c[0] for c in info.supported_controls]
            extensions = [e[0] for e in info.supported_extensions]
            assert "1.3.6.1.4.1.4203.1.11.3" in extensions and "1.3.6.1.4.1.1466.20037" in extensions
            assert schema.attribute_types["nhsIDCode"].equality == ["caseExactMatch"]
            assert schema.attribute_types["nhsMHSPartyKey"].equality == ["caseIgnoreMatch"]
            assert "nhsAsSvcIA" in schema.object_classes["nhsAs"].may_contain
            # with the schema loaded ldap3 checks names client-side: a GP Connect lookup still works
            conn.search(
                "ou=services,o=nhs", "(&(objectClass=nhsAs)(nhsIDCode=*))", attributes=["nhsIDCode"], size_limit=3
            )
            assert conn.result["result"] == 4 and len(conn.entries) == 3
        finally:
            conn.unbind()


GP_CONNECT = [
    "(&(nhsIDCode={ods})(objectClass=nhsMhs)(nhsMhsSvcIA={ia}))",
    "(&(nhsIDCode={ods})(objectClass=nhsAs)(nhsMHSPartyKey={pk}))",
    "(&(nhsMHSPartyKey={pk})(objectClass=nhsMhs)(nhsMhsSvcIA={ia}))",
    "(&(nhsIDCode={ods})(objectClass=nhsAs)(nhsAsSvcIA={ia}))",
    "(&(nhsIDCode={ods})(objectClass=nhsAs)(nhsAsSvcIA={ia})(nhsMhsManufacturerOrg=YGA01))",
    "(uniqueIdentifier={cpa_upper})",
    "(nhsMhsCPAId={cpa})",
]


@pytest.mark.parametrize("template", GP_CONNECT)
def test_gp_connect_lookups_are_index_probes(directory: Directory, db: Engine, template: str) -> None:
    flt = template.format(
        ods="A12345",
        ia="urn:nhs:names:services:gpconnect:fhir:rest:read:metadata-1",
        pk="A12345-1234567",
        cpa="0123abcd",
        cpa_upper="0123ABCD",
    )
    req = ast.SearchRequest(
        "ou=Services,o=nhs",
        ast.Scope.SUB,
        ast.DerefAliases.NEVER,
        0,
        0,
        False,
        parse_filter(flt),
        ("nhsMHSEndPoint", "uniqueIdentifier"),
    )
    plans = directory.explain(req, prefer_index=True)  # PostgreSQL: tiny test tables make seq scans cheapest
    assert plans
    for cls, lines in plans.items():
        text = "\n".join(lines)
        if db.dialect.name == "sqlite":
            assert not re.search(r"\bSCAN (accredited_systems|message_handling_systems)\b", text), (cls, text)
            assert "USING" in text and "INDEX" in text, (cls, text)
        else:
            assert "Seq Scan" not in text, (cls, text)
            assert "Index" in text, (cls, text)
