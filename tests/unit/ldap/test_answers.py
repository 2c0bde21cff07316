"""ldap/answers.py through the sans-IO connection: a repeated search is answered from kept bytes with its own
message ID, and nothing is kept past a moved write counter, for a paged search, a failure, or beyond the bound."""

from __future__ import annotations

from dataclasses import replace

from ldap3.protocol.rfc2696 import paged_search_control

from sds_registry.config import Settings
from sds_registry.ldap.answers import AnswerCache
from sds_registry.ldap.ast import Result, SearchEntry
from sds_registry.ldap.protocol import LDAPConnection
from tests.unit.ldap.test_protocol_connection import RecordingFakeDirectory, code_of, responses, run, search


class Counter:
    """The write counter as services/generation.py gives it (None: cannot tell)."""

    def __init__(self) -> None:
        self.value: int | None = 1

    def __call__(self) -> int | None:
        return self.value


def setup(max_bytes: int = 1 << 20, entries: list[SearchEntry] | None = None,
          result: Result | None = None) -> tuple[LDAPConnection, RecordingFakeDirectory, Counter, AnswerCache]:
    counter = Counter()
    cache = AnswerCache(counter, max_bytes, on_loop=True)
    directory = RecordingFakeDirectory(entries, result)
    return LDAPConnection(directory, replace(Settings()), cache), directory, counter, cache  # type: ignore[arg-type]


def test_a_repeat_is_answered_from_the_cache_with_its_own_message_id() -> None:
    conn, directory, _, _ = setup()
    first = run(conn, search(1))[0]
    for mid in (2, 1023, 1024, 70000, 2**31 - 1):
        again = run(conn, search(mid))[0]
        assert [(m, name) for m, name, _ in responses(again)] == [(mid, "searchResEntry"), (mid, "searchResDone")]
        assert len(directory.calls) == 1
        fresh = LDAPConnection(RecordingFakeDirectory(), Settings())  # type: ignore[arg-type]
        assert again == run(fresh, search(mid))[0]
    assert first == run(LDAPConnection(RecordingFakeDirectory(), Settings()), search(1))[0]  # type: ignore[arg-type]


def test_a_moved_counter_drops_everything_and_an_unknown_one_keeps_nothing() -> None:
    conn, directory, counter, cache = setup()
    run(conn, search(1))
    run(conn, search(2, "(cn=x)"))
    assert len(cache) == 2
    counter.value = 2
    run(conn, search(3))
    assert len(directory.calls) == 3 and len(cache) == 1
    counter.value = None
    run(conn, search(4))
    run(conn, search(5))
    assert len(directory.calls) == 5


def test_other_requests_limits_and_paged_searches_are_not_confused_or_kept() -> None:
    conn, directory, _, cache = setup()
    run(conn, search(1, "(objectClass=*)"))
    run(conn, search(2, "(objectClass=*)", size_limit=5))
    run(conn, search(3, "(cn=a)"))
    assert len(directory.calls) == 3
    run(conn, search(4, controls=[paged_search_control(False, 10, b"")]))
    run(conn, search(5, controls=[paged_search_control(False, 10, b"")]))
    assert len(directory.calls) == 5 and len(cache) == 3


def test_failures_are_not_kept() -> None:
    conn, directory, _, cache = setup(entries=[], result=Result(51, "", "busy"))
    for mid in (1, 2):
        (_, _, done), = responses(run(conn, search(mid))[0])
        assert code_of(done) == 51
    assert len(directory.calls) == 2 and len(cache) == 0


def test_the_bound_drops_the_least_recently_used_and_skips_answers_too_big() -> None:
    conn, directory, _, cache = setup(max_bytes=8 * 1024)
    for n in range(40):
        run(conn, search(n + 1, f"(cn=value{n})"))
    assert 0 < len(cache) < 40 and cache.bytes <= 8 * 1024
    calls = len(directory.calls)
    run(conn, search(100, "(cn=value39)"))  # the latest is still kept
    assert len(directory.calls) == calls
    run(conn, search(101, "(cn=value0)"))  # the first went
    assert len(directory.calls) == calls + 1
    big = [SearchEntry(f"cn=e{i},o=nhs", [("cn", ["x" * 200])]) for i in range(10)]
    conn, directory, _, cache = setup(max_bytes=8 * 1024, entries=big)
    run(conn, search(1))
    assert len(cache) == 0
