"""Resident memory of a server's process tree over time, read from /proc (Linux), for the soak and hostile benches.

A sampler thread records every process under a root pid (``sds serve``, its facades, gunicorn's workers) each
``interval`` seconds; ``summary`` gives each one's RSS at the end of the warm-up, at the end, and the most
after the warm-up, so growth under steady load shows.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def status_kib(pid: int, field: str) -> int | None:
    """A size field of /proc/<pid>/status in KiB (``VmRSS``, ``VmHWM``, ...); None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pid: int) -> int | None:
    return status_kib(pid, "VmRSS")


def peak_kib(pid: int) -> int | None:
    """The process's own high-water RSS (VmHWM). Unlike wait4's ``ru_maxrss``, it does not carry the forking
    process's high-water mark over exec, so it is the child's own figure."""
    return status_kib(pid, "VmHWM")


def label(pid: int, root: int) -> str:
    """What a process is: ``supervisor``, the facade a child of the root serves (from its command line), or
    ``<facade>-worker`` for a facade's own children (gunicorn's workers, the SSP's processes)."""
    if pid == root:
        return f"supervisor {pid}"
    parent = _parent(pid)
    if parent is not None and parent != root and parent != pid:
        return f"{label(parent, root).split()[0]}-worker {pid}"
    try:
        words = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return f"? {pid}"
    if "serve-facade" in words and words.index("serve-facade") + 1 < len(words):
        return f"{words[words.index('serve-facade') + 1]} {pid}"
    return f"{' '.join(words[-1:])} {pid}"


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def open_fds(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return -1


@dataclass
class RssSampler:
    root: int
    interval: float = 5.0
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self.started = time.monotonic()

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        now = time.monotonic() - self.started
        for pid in tree(self.root):
            kib = rss_kib(pid)
            if kib is not None:
                self.samples.setdefault(label(pid, self.root), []).append((now, kib))

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def summary(self, warmup: float) -> list[tuple[str, float, float, float]]:
        """(process, MiB at the end of the warm-up, MiB at the end, most MiB after the warm-up) per process."""
        rows = []
        for name, points in sorted(self.samples.items()):
            after = [kib for t, kib in points if t >= warmup] or [points[-1][1]]
            rows.append((name, after[0] / 1024, after[-1] / 1024, max(after) / 1024))
        return rows


def print_rss(rows: list[tuple[str, float, float, float]], warmup: float) -> None:
    print(f"RSS per server process (MiB; after {warmup:.0f} s of warm-up): start / end / max / growth")
    for name, start, end, most in rows:
        print(f"  {name:24} {start:7.1f} {end:7.1f} {most:7.1f} {end - start:+7.1f}")
