"""The organisation page (/organisations/<ODS>): its accredited systems and MHS records, each endpoint's
validation status in words, and the calls a consumer makes to find each endpoint, ready to copy."""

from __future__ import annotations

import re

from flask import request
from werkzeug.wrappers import Response

from sds_registry.services import browse
from sds_registry.web import context
from sds_registry.web.pages import bp
from sds_registry.web.pages.calls import consumer_calls, ldap_url
from sds_registry.web.pages.common import not_found, page, when
from sds_registry.web.pages.explain import flag, mhs_status

ODS_SHAPE = re.compile(r"[A-Z0-9]{1,9}")


@bp.get("/organisations/<ods_code>")
def organisation(ods_code: str) -> Response:
    ods = ods_code.strip().upper()
    if not ODS_SHAPE.fullmatch(ods):  # nothing else can be stored (and PostgreSQL refuses a NUL in a parameter)
        return not_found(f"{ods_code!r} is not an ODS code.")
    found = browse.organisation_records(context.session(), ods)
    if found.organisation is None and not found.systems and not found.mhs_records:
        return not_found(f"Nothing is registered under the ODS code {ods}.")
    settings = context.settings()
    http_base = request.host_url.rstrip("/")
    ldap = ldap_url(settings.ldap_bind, settings.ldaps_bind, request.host.rsplit(":", 1)[0].strip("[]"))
    asids = {s.party_key.lower(): s.asid for s in found.systems}
    records = [{
        "row": m,
        "problems": mhs_status(ods, m.interaction_id, list(m.endpoints), m.flags),
        "asid": asids.get(m.party_key.lower()),
        "calls": consumer_calls(http_base=http_base, ldap_url=ldap, ods_code=ods, interaction_id=m.interaction_id,
                                party_key=m.party_key),
    } for m in found.mhs_records]
    systems = [{"row": s, "flags": [flag(code) for code in (s.flags or "").split()]} for s in found.systems]
    name = found.organisation.name if found.organisation is not None else ods
    return page("organisation.html", title=f"{name} ({ods})", ods=ods, found=found, systems=systems,
                records=records, when=when)
