"""LDIF checking beside the writes: a big LDIF is read and validated (``ldif._validate``) in a second process
while this one plans and stores, so the two run on two cores. No Session.

``validated`` yields what ``_validate`` yields, in the same order, and adds the same rejections and skips to
the report at the same points (between the same two records), so an import answers exactly as before. Why a
process: reading and checking is pure Python, about a third of an import's CPU, and threads would share one
interpreter lock. The text is still read here (the caller's stream: its progress counting, its errors) and
written to the worker's stdin by a thread; records come back on its stdout as pickled batches of plain tuples.
A thread here reads up to AHEAD batches ahead (a pipe alone holds a few dozen records, and the worker would
wait while the writer stores a chunk), so memory stays bounded: when the writer falls behind, the worker
waits. The worker is ``python -m sds_registry.ldap.ldif_worker`` (a fresh interpreter: nothing of this
process's database connections or threads is copied, and no caller's main module is run again, as
multiprocessing's spawn would), which takes a few tenths of a second to start: an input under
PARALLEL_MIN_BYTES is checked here.
"""

from __future__ import annotations

import io
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sds_registry.ldap import dit
from sds_registry.ldap.ldif import READ, _validate
from sds_registry.ldap.ldif_store import ImportReport, Pending

PARALLEL_MIN_BYTES = 16 << 20
BATCH = 1000  # records per message
AHEAD = 6  # messages read ahead of the caller: the worker goes on checking while the caller stores a chunk
_CLASSES = {c.name: c for c in dit.ENTRY_CLASSES}


class _Blocks(io.TextIOBase):
    """A ``read()``-able text stream: the blocks already read, then what ``more`` gives ("" at the end)."""

    def __init__(self, blocks: list[str], more: Callable[[], str]) -> None:
        super().__init__()
        self.blocks = blocks
        self.more = more

    def read(self, size: int | None = -1) -> str:
        return self.blocks.pop(0) if self.blocks else self.more()


def validated(stream: Iterable[str], report: ImportReport, lenient: bool) -> Iterator[Pending]:
    """``_validate(stream, report, lenient)``, checked in a worker process when the input is big."""
    read = getattr(stream, "read", None)
    if read is None:
        yield from _validate(stream, report, lenient)
        return
    head: list[str] = []
    size = 0
    while size < PARALLEL_MIN_BYTES:
        text = read(READ)
        if not text:
            yield from _validate(_Blocks(head, lambda: ""), report, lenient)
            return
        head.append(text)
        size += len(text)
    yield from _in_worker(_Blocks(head, lambda: str(read(READ))), report, lenient)


def _in_worker(source: _Blocks, report: ImportReport, lenient: bool) -> Iterator[Pending]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    worker = subprocess.Popen([sys.executable, "-m", "sds_registry.ldap.ldif_worker", str(int(lenient))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert worker.stdin is not None and worker.stdout is not None
    text_out, results = worker.stdin, worker.stdout
    failed: list[BaseException] = []

    def feed() -> None:
        """Send the text on; a failure of the stream is raised in the caller's thread."""
        try:
            while text := source.read(READ):
                text_out.write(text.encode("utf-8", "surrogatepass"))
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, which raises it)
            failed.append(exc)
        finally:
            try:
                text_out.close()  # the end of the text (an early one when reading failed)
            except OSError:
                pass  # the worker is gone: the caller says so

    feeder = threading.Thread(target=feed, name="sds-ldif-feed", daemon=True)
    feeder.start()
    batches: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(AHEAD)
    stop = threading.Event()

    def receive() -> None:
        """Read the worker's messages ahead of the caller (None: its output ended). A pipe holds 64 KiB, a
        few dozen records: without this the worker would wait each time the caller stores a chunk."""
        batch: list[tuple[Any, ...]] | None = []
        while batch is not None and not stop.is_set():
            try:
                batch = pickle.load(results)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                batch = None  # the end, early or not: the caller looks at the worker
            while not stop.is_set():
                try:
                    batches.put(batch, timeout=0.5)
                    break
                except queue.Full:
                    continue

    receiver = threading.Thread(target=receive, name="sds-ldif-receive", daemon=True)
    receiver.start()
    try:
        while True:
            got = batches.get()
            if got is None:
                raise RuntimeError(f"the LDIF checking process ended early (exit code {worker.wait()})") from None
            for item in got:
                if len(item) == 5:
                    yield Pending(_CLASSES[item[0]], item[1], item[2], item[3], item[4])
                elif item[0] == "rejected":
                    report.rejected.append(item[1])
                elif item[0] == "skipped":
                    report.skipped.append(item[1])
                elif item[0] == "error":
                    raise RuntimeError(f"the LDIF checking process failed:\n{item[1]}")
                else:  # "end"
                    feeder.join()
                    if failed:
                        raise failed[0]
                    return
            if failed and not isinstance(failed[0], OSError):
                raise failed[0]
    finally:
        stop.set()
        if worker.poll() is None:
            worker.kill()  # an early end (a failure here, or the caller stopped reading)
        worker.wait()
        receiver.join(5)
        results.close()
        feeder.join(5)


def _work(text: IO[str], out: IO[bytes], lenient: bool) -> None:
    """The worker: validate ``text``, writing records, rejections and skips to ``out`` in their order."""
    report = ImportReport()
    batch: list[tuple[Any, ...]] = []

    def notes() -> None:
        batch.extend(("rejected", r) for r in report.rejected)
        batch.extend(("skipped", s) for s in report.skipped)
        report.rejected.clear()
        report.skipped.clear()

    try:
        for p in _validate(text, report, lenient):
            if report.rejected or report.skipped:
                notes()
            batch.append((p.cls.name, p.dn, p.values, p.flags, p.line))
            if len(batch) >= BATCH:
                pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
                batch = []
        notes()
        batch.append(("end",))
    except BaseException:  # noqa: BLE001  (a bug: told to the caller, which raises)
        import traceback

        batch = [("error", traceback.format_exc())]
    pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


if __name__ == "__main__":
    import gc

    gc.set_threshold(50_000, 20, 100)  # as the CLI's bulk load: records live a batch, rescanning them is waste
    results_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but batches goes to the caller's pipe
    _work(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogatepass", newline=""), results_out,
          sys.argv[1] == "1")
