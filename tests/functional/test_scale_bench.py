"""bench/scale.py in short: 100 and 1,000 practices on each backend, loaded by slapadd and by ``sds import``, then
looked up through a real ``sds serve`` (every answer checked against the data by the bench itself).

Asserted: the goals whose figures are steady at this size. The database is at most 2x slapd's mdb at 1,000
practices (at 100 a PostgreSQL database's own fixed pages dominate); the import's peak RSS stays far under the
300 MB bound (it streams); every server process's RSS is under 300 MB; no LDAP lookup plan scans a table at
1,000; the server's CPU per lookup at 1,000 is at most 2x that at 100 (the 1.2x goal is the full bench's, at
100,000: at this size one 10 ms /proc tick is a few percent of a pass, and a busy machine moves it more). Not
asserted: load time against slapadd, which the full bench reports (Python's start-up alone is several times
slapadd's whole load at 100 practices).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import scale
from bench.ldapkit import slapd

#: At this size one 10 ms /proc tick is a few percent of a pass and a loaded CI machine moved the LDAP lookup's
#: ratio to 1.65 once; 2x still fails a lookup whose cost grows with the directory (10x the practices here).
LOOKUP_BOUND = 2.0

pytestmark = pytest.mark.skipif(not slapd.available(), reason="slapd/slapadd is not installed")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_short_scale_bench_meets_the_steady_goals(backend: str, tmp_path: Path) -> None:
    rows, refs = scale.run([100, 1000], [backend], tmp_path, lookups=60, rounds=3, say=lambda _: None)
    print("\n".join(scale.report(rows, refs)))
    small, large = sorted(rows, key=lambda r: r.practices)
    assert (small.practices, large.practices) == (100, 1000)
    assert large.entries > 9 * small.entries > 0
    assert large.db_mb / refs[1000].mdb_mb <= scale.GOALS["size"]
    assert max(r.import_peak_mb for r in rows) < 250
    assert max(max(r.rss_mb.values()) for r in rows) * 1.048576 < scale.GOALS["rss_mb"]
    assert set(large.lookup_us) == set(scale.LOOKUPS)
    assert large.full_scans == []  # the LDAP lookup's plans are index probes (at 100 PostgreSQL may scan a small table)
    for name in scale.LOOKUPS:  # a lookup that scanned would cost about 10x at 10x the practices
        assert large.lookup_us[name] <= LOOKUP_BOUND * small.lookup_us[name], (name, small.lookup_us, large.lookup_us)
