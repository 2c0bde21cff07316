"""Multiprocess metrics: an increment is kept in memory and reaches the process's samples file within
metrics.BATCH_SECONDS (or at a scrape, or at exit), and a forked child never writes its parent's pending
increments. Each case runs in a new interpreter: prometheus_client picks multiprocess mode when first imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

READ = """
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

def total() -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    return registry.get_sample_value("sds_ssp_decisions_total", {"outcome": "test"}) or 0.0
"""


def run(tmp_path: Path, body: str) -> str:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    script = "import os, time\n" + READ + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_increment_reaches_the_samples_file_within_the_batch_seconds(tmp_path: Path) -> None:
    out = run(tmp_path, """
        from sds_registry import metrics
        metrics.observe_ssp("test")
        print("at once", total())
        deadline = time.monotonic() + metrics.BATCH_SECONDS * 10
        while total() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        print("later", total())
    """)
    assert out.split("\n")[:2] == ["at once 0.0", "later 1.0"]


def test_a_scrape_or_the_exit_writes_what_is_pending(tmp_path: Path) -> None:
    out = run(tmp_path, """
        from sds_registry import metrics
        metrics.observe_ssp("test")
        metrics.write_pending()  # what /metrics does first
        print(total())
        metrics.observe_ssp("test")
    """)
    assert out.strip() == "1.0"
    assert run(tmp_path, "print(total())").strip() == "2.0"  # the second increment was written at exit


def test_a_forked_child_does_not_write_its_parents_pending_increments(tmp_path: Path) -> None:
    out = run(tmp_path, """
        from sds_registry import metrics
        metrics.observe_ssp("test")
        pid = os.fork()
        if pid == 0:
            metrics.observe_ssp("test")
            metrics.write_pending()
            os._exit(0)
        os.waitpid(pid, 0)
        metrics.write_pending()
        print(total())
    """)
    assert out.strip() == "2.0"  # the parent's one and the child's one, not the parent's twice
