"""/metrics in multiprocess mode: a samples file another process has created but not yet sized is left out of the
scrape instead of failing it (prometheus_client reads it empty and raises struct.error: a 500 now and then)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from sds_registry.web.metrics import _SettledFiles


def _samples(folder: Path) -> None:
    """One finished process's file with a counter at 3, and one just created by a starting process."""
    done = MmapedDict(str(folder / "counter_101.db"))  # type: ignore[no-untyped-call]
    done.write_value(mmap_key("sds_things_total", "sds_things_total", [], [], "things"), 3.0, 0.0)  # type: ignore[no-untyped-call]
    done.close()  # type: ignore[no-untyped-call]
    (folder / "counter_102.db").touch()


def test_the_library_collector_fails_on_a_file_not_yet_sized(tmp_path: Path) -> None:
    _samples(tmp_path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    with pytest.raises(struct.error):
        generate_latest(registry)


def test_ours_scrapes_the_other_files(tmp_path: Path) -> None:
    _samples(tmp_path)
    registry = CollectorRegistry()
    _SettledFiles(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    assert "sds_things_total 3.0" in generate_latest(registry).decode()
