"""The SSP's HTTP/1.1 parser under request-smuggling shapes, over a real socket: the short version of
bench/ssp_fuzz.py (ten cases of each shape). Every case ends in a 400-class answer or a close, never a hang or
the provider timeout's 504; nothing hidden in a body is forwarded as a request of its own; the SSP keeps serving
and logs no traceback."""

from __future__ import annotations

from pathlib import Path

from bench.ssp_fuzz import PROVIDER_TIMEOUT, SHAPES, print_report, run


def test_smuggling_shapes_get_a_clean_answer_and_nothing_is_smuggled(tmp_path: Path) -> None:
    report = run(cases=10 * len(SHAPES), seed_value=20261204, seconds=240, folder=tmp_path, log=lambda _: None,
                 open_wait=0.3)
    print_report(report)
    assert report.cases == 10 * len(SHAPES)
    assert not report.hangs, report.hangs[:3]
    assert report.smuggled == 0 and not report.over_forwarded, report.over_forwarded[:3]
    assert report.provider_malformed == 0
    assert report.alive and report.tracebacks == 0
    assert report.slowest < PROVIDER_TIMEOUT, "a case waited for the provider timeout"
    statuses = {outcome.split("+")[0] for _, outcome in report.outcomes}
    assert statuses <= {"200", "400", "closed"}, report.outcomes
    # Shapes the SSP must refuse outright (no valid reading of them exists).
    for shape in ("cl+te", "duplicate-cl", "obs-fold", "huge-chunk", "line-endings", "nul", "long", "bad-length"):
        assert {o for (s, o) in report.outcomes if s == shape} == {"400"}, (shape, report.outcomes)
