"""formats.split_routing_segment: a service root as /api/resolve returns it is recognised, never doubled."""

from __future__ import annotations

import pytest

from sds_registry.domain.formats import split_routing_segment

ROOT = "https://gpc.supplier.nhs.uk/B86041/STU3/1"


@pytest.mark.parametrize(("url", "expected"), [
    (ROOT, (ROOT, "")),
    (ROOT + "/gpconnect", (ROOT, "gpconnect")),
    (ROOT + "/gpconnect/structured", (ROOT, "gpconnect/structured")),
    (ROOT + "/gpconnect/documents", (ROOT, "gpconnect/documents")),
    # Only after the three root segments, and case-sensitively (endpoints are compared as strings).
    ("https://h.nhs.uk/gpconnect", ("https://h.nhs.uk/gpconnect", "")),
    (ROOT + "/GPConnect", (ROOT + "/GPConnect", "")),
    (ROOT + "/x/gpconnect", (ROOT + "/x/gpconnect", "")),
    (ROOT + "/gpconnect?x=1", (ROOT + "/gpconnect?x=1", "")),
])
def test_split_routing_segment(url: str, expected: tuple[str, str]) -> None:
    assert split_routing_segment(url) == expected
