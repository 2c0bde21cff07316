"""RestartGuard: a dead process is replaced unless MAX_QUICK_DEATHS in a row died within QUICK_DEATH_SECONDS."""

from __future__ import annotations

from sds_registry.workers import MAX_QUICK_DEATHS, QUICK_DEATH_SECONDS, RestartGuard


def test_the_last_of_a_run_of_quick_deaths_is_not_replaced() -> None:
    guard = RestartGuard()
    answers = [guard.allow(0.1) for _ in range(MAX_QUICK_DEATHS)]
    assert answers == [True] * (MAX_QUICK_DEATHS - 1) + [False]


def test_a_process_that_lived_long_enough_starts_the_count_again() -> None:
    guard = RestartGuard()
    for _ in range(MAX_QUICK_DEATHS - 1):
        assert guard.allow(0.1)
    assert guard.allow(QUICK_DEATH_SECONDS + 0.1)  # lived: the run is broken
    assert [guard.allow(0.1) for _ in range(MAX_QUICK_DEATHS)] == [True] * (MAX_QUICK_DEATHS - 1) + [False]
