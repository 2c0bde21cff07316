"""The FHIR views' pure helpers: correlation ids."""

from __future__ import annotations

import uuid

from sds_registry.fhir import search, views


def test_new_correlation_id_is_an_upper_case_uuid4() -> None:
    seen = set()
    for _ in range(2000):
        value = views.new_correlation_id()
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert value == str(parsed).upper()
        assert search.valid_correlation_id(value)
        seen.add(value)
    assert len(seen) == 2000
