"""The search page (/): one box for an ODS code, ASID, party key, interaction ID or FQDN; the records found, in
tables paged by keyset cursors (``after_as``, ``after_mhs``)."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from sds_registry.errors import InvalidIdentifier
from sds_registry.services import browse
from sds_registry.web import context
from sds_registry.web.pages import bp
from sds_registry.web.pages.common import cursor, page


@bp.get("/")
def search() -> Response:
    text = request.args.get("q", "")
    if not text.strip():
        return page("search.html", title="Search the directory", q="", query=None)
    try:
        query = browse.classify(text)
    except InvalidIdentifier as exc:
        return page("search.html", 400, title="Search the directory", q=text, query=None,
                    error=exc.issues[0].message)
    session = context.session()
    systems = browse.find_systems(session, query, after=cursor("after_as"))
    mhs = browse.find_mhs_records(session, query, after=cursor("after_mhs"))
    organisation = browse.find_organisation(session, query.value) if query.kind == "ods" else None
    return page("search.html", title=f"{browse.KINDS[query.kind]} {query.value}", q=text, query=query,
                kind=browse.KINDS[query.kind], systems=systems, mhs=mhs, organisation=organisation)
