"""render_json writes exactly the text of json.dumps(render.bundle(...), indent=2) for the same records and ids."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from sds_registry.fhir import json_text, render, render_json
from sds_registry.services.directory import AsView, MhsView

#: Values as the directory may hold them: blank and space-only ones (absent to the mapping), non-ASCII,
#: characters JSON escapes.
_TEXT = st.one_of(st.sampled_from(["", " ", "  \t", "A20047", "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05",
                                   "https://a.example/x?y=1&z=é", 'q"uo\\te', "line\nbreak", "\u2028€"]),
                  st.text(max_size=12))
_OPTIONAL = st.one_of(st.none(), _TEXT)

_AS_VIEWS = st.builds(AsView, _TEXT, _TEXT, _TEXT, _OPTIONAL, st.lists(_TEXT, max_size=6).map(tuple),
                      st.lists(_TEXT, max_size=3).map(tuple))
_MHS_VIEWS = st.builds(MhsView, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _OPTIONAL, _OPTIONAL, _OPTIONAL,
                       st.one_of(st.none(), st.integers(-3, 10**6)), _OPTIONAL, _OPTIONAL, _OPTIONAL,
                       st.lists(_TEXT, max_size=4).map(tuple), st.lists(_TEXT, max_size=3).map(tuple))


@given(st.lists(_AS_VIEWS, max_size=3), _TEXT, _TEXT)
def test_device_bundle_text(records: list[AsView], self_url: str, base_url: str) -> None:
    ids = [f"D-{n}" for n in range(len(records))]
    resources = [render.device(r, i) for r, i in zip(records, ids, strict=True)]
    expected = render.bundle("B-1", base_url, self_url, resources)
    text = render_json.bundle("B-1", self_url, base_url,
                              [(i, render_json.device(r, i)) for r, i in zip(records, ids, strict=True)])
    assert text == json.dumps(expected, indent=2) == json_text.dumps(expected)


@given(st.lists(st.tuples(_MHS_VIEWS, st.one_of(st.none(), _TEXT)), max_size=3), _TEXT)
def test_endpoint_bundle_text(records: list[tuple[MhsView, str | None]], self_url: str) -> None:
    base_url = "http://localhost/spine-directory/FHIR/R4/Endpoint"
    first, second = itertools.count(), itertools.count()
    resources = [resource for record, address in records
                 for resource in render.endpoints(record, lambda: f"E-{next(first)}", address)]
    entries = [entry for record, address in records
               for entry in render_json.endpoints(record, lambda: f"E-{next(second)}", address)]
    expected = render.bundle("B-2", base_url, self_url, resources)
    assert render_json.bundle("B-2", self_url, base_url, entries) == json.dumps(expected, indent=2)
    assert [resource_id for resource_id, _ in entries] == [r["id"] for r in resources]
