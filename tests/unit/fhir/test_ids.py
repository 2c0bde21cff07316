"""Bundle, resource and correlation ids: upper-case random UUIDs (version 4), never repeated, not even by a
forked child (gunicorn forks its workers) that inherits the parent's pool of random bytes."""

from __future__ import annotations

import os
import re
import uuid

from sds_registry.web.fhir import new_correlation_id

UPPER_UUID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")


def test_ids_are_upper_case_uuid4_and_unique_across_pool_refills() -> None:
    ids = [new_correlation_id() for _ in range(3000)]  # 3000 x 16 bytes: several 4 KB refills
    assert len(set(ids)) == len(ids)
    for value in ids[:50] + ids[-50:]:
        assert UPPER_UUID.fullmatch(value), value
        assert uuid.UUID(value).version == 4


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_correlation_id()  # the parent's pool is filled
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids
        os.write(write_end, ",".join(new_correlation_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split(","))
    parent = {new_correlation_id() for _ in range(5)}
    assert len(child) == 5
    assert not child & parent
