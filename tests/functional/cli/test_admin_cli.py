"""sds token list|revoke (and create's name rules), sds agreements list|add|delete, sds changes [--follow]."""

from __future__ import annotations

import io
import json
import threading
import time

from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from sds_registry.cli import main
from sds_registry.cli.changes import follow_changes
from sds_registry.config import load_settings
from sds_registry.models import ApiClient, AuditEvent, DataSharingAgreement
from sds_registry.services import audit
from sds_registry.services.clients import actor_for_token


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SDS_DATABASE_URL": database_url}, catch_exceptions=False)


def actor(engine: Engine, token: str) -> object:
    with Session(engine) as s:
        return actor_for_token(s, token)


# ---- tokens ----------------------------------------------------------------------------------------------


def test_token_names_must_be_given_and_unique_among_live_tokens(db: Engine, database_url: str) -> None:
    for name in ("", "  ", "cli"):
        refused = run(database_url, "token", "create", "--name", name, "--admin")
        assert refused.exit_code == 1 and "name" in refused.output, refused.output
    assert run(database_url, "token", "create", "--name", "ci", "--admin").exit_code == 0
    duplicate = run(database_url, "token", "create", "--name", "ci", "--ods", "A20047")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert run(database_url, "token", "revoke", "ci").exit_code == 0
    assert run(database_url, "token", "create", "--name", "ci", "--ods", "A20047").exit_code == 0
    with Session(db) as s:
        assert sorted(c.revoked for c in s.scalars(select(ApiClient))) == [False, True]


def test_token_list_and_revoke(db: Engine, database_url: str) -> None:
    admin_token = run(database_url, "token", "create", "--name", "ops", "--admin").output.strip()
    bound_token = run(database_url, "token", "create", "--name", "supplier", "--ods", "B82617", "--ods",
                      "A20047").output.strip()
    listed = run(database_url, "token", "list")
    assert listed.exit_code == 0
    lines = {line.split("\t")[1]: line for line in listed.output.splitlines()}
    assert set(lines) == {"ops", "supplier"}
    assert "\tadmin\t" in lines["ops"] and "\tods=A20047,B82617\t" in lines["supplier"]
    assert lines["supplier"].endswith("\tlive") and "last_used=-" in lines["supplier"]
    assert admin_token not in listed.output and bound_token not in listed.output

    assert actor(db, bound_token) is not None
    revoked = run(database_url, "token", "revoke", "supplier")
    assert revoked.exit_code == 0 and "revoked 'supplier'" in revoked.output
    assert actor(db, bound_token) is None  # refused at once
    assert actor(db, admin_token) is not None
    again = run(database_url, "token", "revoke", "supplier")
    assert again.exit_code == 1 and "no live API client" in again.output

    as_json = [json.loads(line) for line in run(database_url, "token", "list", "--json").output.splitlines()]
    supplier = next(c for c in as_json if c["name"] == "supplier")
    assert supplier["revoked"] is True and supplier["revoked_at"] and supplier["ods_codes"] == ["A20047", "B82617"]
    assert all(set(c) == {"id", "name", "admin", "ods_codes", "created_at", "last_used_at", "revoked", "revoked_at"}
               for c in as_json)
    live = run(database_url, "token", "list", "--live").output
    assert "supplier" not in live and "ops" in live

    by_id = run(database_url, "token", "revoke", str(next(c["id"] for c in as_json if c["name"] == "ops")))
    assert by_id.exit_code == 0 and actor(db, admin_token) is None
    assert run(database_url, "token", "revoke", "nobody").exit_code == 1
    with Session(db) as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.record_type == "api_client")).all()
        assert sorted((e.actor, e.action) for e in events) == [("cli", "create")] * 2 + [("cli", "revoke")] * 2


# ---- agreements ------------------------------------------------------------------------------------------


def test_agreements_add_list_delete(db: Engine, database_url: str) -> None:
    added = run(database_url, "agreements", "add", "K81045", "B82617", "--description", "Continuum -> Coxwold")
    assert added.exit_code == 0 and added.output.endswith("K81045 -> B82617\n")
    assert run(database_url, "agreements", "add", "GPC001", "*").exit_code == 0
    assert run(database_url, "agreements", "add", "K81045", "B82617").exit_code == 1  # exists
    bad = run(database_url, "agreements", "add", "k81045", "B82617")
    assert bad.exit_code == 1 and "consumer_ods" in bad.output

    listed = run(database_url, "agreements", "list").output.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["K81045 -> B82617", "GPC001 -> *"]
    only = run(database_url, "agreements", "list", "--provider", "*", "--json").output.splitlines()
    assert [json.loads(line)["consumer_ods"] for line in only] == ["GPC001"]

    assert run(database_url, "agreements", "delete", "K81045", "B82617").exit_code == 0
    wildcard_id = listed[1].split("\t")[0]
    assert run(database_url, "agreements", "delete", wildcard_id).exit_code == 0
    assert run(database_url, "agreements", "delete", wildcard_id).exit_code == 1
    assert run(database_url, "agreements", "delete", "K81045").exit_code == 2
    with Session(db) as s:
        assert s.scalars(select(DataSharingAgreement)).all() == []
        actions = [(e.actor, e.action, e.record_key) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert actions == [("cli", "create", "K81045->B82617"), ("cli", "create", "GPC001->*"),
                           ("cli", "delete", "K81045->B82617"), ("cli", "delete", "GPC001->*")]


# ---- the write audit -------------------------------------------------------------------------------------


def test_changes_lines_filters_and_json(db: Engine, database_url: str) -> None:
    run(database_url, "agreements", "add", "K81045", "B82617")
    run(database_url, "agreements", "add", "GPC001", "A20047")
    run(database_url, "token", "create", "--name", "ops", "--admin")
    run(database_url, "agreements", "delete", "GPC001", "A20047")

    lines = run(database_url, "changes").output.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "cli create data_sharing_agreement:K81045->B82617",
        "cli create data_sharing_agreement:GPC001->A20047",
        f"cli create api_client:{lines[2].rsplit(':', 1)[1]}",
        "cli delete data_sharing_agreement:GPC001->A20047",
    ]
    assert lines[0].split(" ")[0].endswith("Z") and lines[0].split(" ")[1].startswith("#")
    assert len(run(database_url, "changes", "--last", "2").output.splitlines()) == 2
    assert run(database_url, "changes", "--ods", "A20047").output.count("\n") == 2
    assert run(database_url, "changes", "--record", "client").output.count("api_client:") == 1
    assert run(database_url, "changes", "--record", "agreement:K81045->B82617").output.count("\n") == 1
    assert run(database_url, "changes", "--actor", "someone-else").output == ""
    assert run(database_url, "changes", "--since", "2999-01-01T00:00:00Z").output == ""
    assert run(database_url, "changes", "--since", "soon").exit_code == 2
    assert run(database_url, "changes", "--ods", "a2").exit_code == 2
    events = [json.loads(line) for line in run(database_url, "changes", "--json", "--record", "agreement").output
              .splitlines()]
    assert events[-1]["action"] == "delete" and events[-1]["after"] is None
    assert events[-1]["before"]["consumer_ods"] == "GPC001"


def test_an_update_line_names_the_changed_fields(db: Engine, database_url: str) -> None:
    from sds_registry.services.organisations import create_organisation, update_organisation
    from sds_registry.services.writes import CLI_ACTOR

    with Session(db) as s:
        create_organisation(s, {"ods_code": "A20047", "name": "Old"}, CLI_ACTOR)
        s.commit()
        update_organisation(s, "A20047", {"name": "New"}, 1, CLI_ACTOR, partial=True)
        s.commit()
    lines = run(database_url, "changes", "--record", "org:A20047").output.splitlines()
    assert lines[0].endswith("cli create organisation:A20047")
    assert lines[1].endswith("cli update organisation:A20047 changed=name")


def test_follow_yields_only_writes_recorded_after_it_started(committed_session: Session) -> None:
    committed_session.add(AuditEvent(actor="cli", action="create", record_type="organisation", record_key="A20047"))
    committed_session.commit()
    polls = audit.follow_write_events(sessionmaker(bind=committed_session.get_bind()), actor="ops")
    assert next(polls) == []
    committed_session.add_all([AuditEvent(actor="ops", action="create", record_type="organisation", record_key="X1"),
                               AuditEvent(actor="cli", action="create", record_type="organisation", record_key="X2")])
    committed_session.commit()
    assert [e.record_key for e in next(polls)] == ["X1"]
    polls.close()


def test_changes_follow_prints_new_writes(db: Engine, database_url: str) -> None:
    out = io.StringIO()
    stop = threading.Event()
    settings = load_settings({"database_url": database_url}, environ={})
    thread = threading.Thread(target=follow_changes, args=(settings, {"record_type": "data_sharing_agreement"}),
                              kwargs={"interval": 0.05, "out": out, "stop": stop})
    thread.start()
    try:
        time.sleep(0.3)
        run(database_url, "token", "create", "--name", "ops", "--admin")
        run(database_url, "agreements", "add", "K81045", "B82617")
        deadline = time.monotonic() + 5
        while "\n" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert out.getvalue().splitlines()[0].endswith("cli create data_sharing_agreement:K81045->B82617")
    assert out.getvalue().count("\n") == 1


def test_changes_knows_whole_file_imports(committed_session: Session, database_url: str) -> None:
    committed_session.add_all([
        AuditEvent(actor="cli", action="import", record_type="directory", record_key="dump.json"),
        AuditEvent(actor="cli", action="import", record_type="ldif", record_key="sds.ldif"),
    ])
    committed_session.commit()
    assert run(database_url, "changes", "--record", "directory").output.endswith("import directory:dump.json\n")
    assert run(database_url, "changes", "--record", "dump.json").output.count("\n") == 1
    assert run(database_url, "changes", "--record", "ldif:sds.ldif").output.endswith("import ldif:sds.ldif\n")
