"""The interaction catalogue page (/interactions): the GP Connect interactions /api/interactions lists, with
capability, HTTP verb, path, JWT scope and the routing segment of the provider's endpoint."""

from __future__ import annotations

from werkzeug.wrappers import Response

from sds_registry.domain.interactions import CATALOGUE
from sds_registry.web.pages import bp
from sds_registry.web.pages.common import page


@bp.get("/interactions")
def interactions() -> Response:
    rows = sorted(CATALOGUE, key=lambda i: (not i.current, i.capability, i.id))
    return page("interactions.html", title="Interaction catalogue", rows=rows)
