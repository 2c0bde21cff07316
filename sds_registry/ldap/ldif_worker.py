"""LDIF checking beside the writes: a big LDIF is validated (``ldif._validate``) in WORKERS other processes
while this one plans and stores, so checking and storing run on several cores. No Session.

``validated`` yields what ``_validate`` over the whole text yields, in the same order, and adds the same
rejections and skips to the report at the same points (between the same two records), so an import answers
exactly as before. Why processes: reading and checking is pure Python, and threads would share one interpreter
lock. The text is still read here (the caller's stream: its progress counting, its errors). A feeding thread
cuts it into blocks of about READ characters, each ending after an empty line that no continuation line follows
(no record spans an empty line, and after one ``ldif.read_records`` holds no record: each block reads as a text
of its own, its line numbers starting where it starts), and hands block k to worker k % WORKERS through that
worker's sending thread (QUEUED blocks wait for each: a worker finds its next block ready). A worker answers
each block with pickled batches of plain tuples, the last ending with a block-end marker; a receiving thread
per worker reads up to AHEAD batches ahead of the caller, who takes the blocks back in order (worker 0's block
0, worker 1's block 1, worker 0's block 2...). Memory stays bounded: a worker that falls behind makes the
feeder wait, and a caller storing slower than the workers check makes them wait (a block holds READ characters
and at most one record more). The workers are ``python -m sds_registry.ldap.ldif_worker`` (fresh interpreters:
nothing of this process's database connections or threads is copied, and no caller's main module is run again,
as multiprocessing's spawn would); each takes a few tenths of a second to start (importing the DIT imports
SQLAlchemy), so an input under PARALLEL_MIN_BYTES is checked here. (Starting them before those bytes are read
would win little: reading 16 MiB takes about 20 ms.)
"""

from __future__ import annotations

import io
import os
import pickle
import queue
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from sds_registry.ldap import dit
from sds_registry.ldap.ldif import READ, _validate
from sds_registry.ldap.ldif_store import ImportReport, Pending

PARALLEL_MIN_BYTES = 16 << 20
WORKERS = 2  # checking processes (1 works too: the blocks then all go to one)
BATCH = 1000  # records per message
AHEAD = 3  # messages (about a block each) read ahead of the caller per worker: they check while it stores
QUEUED = 1  # blocks waiting for each worker (beside the one being sent): one slow block leaves no worker idle
_CUT = re.compile(r"\n\r*\n(?=[^ ])")  # the end of an empty line (CRLF too) that no continuation line follows
_FRAME = struct.Struct("<qq")  # before each block sent to a worker: the number of its first line, its bytes
_CLASSES = {c.name: c for c in dit.ENTRY_CLASSES}
_T = TypeVar("_T")


class _Blocks(io.TextIOBase):
    """A ``read()``-able text stream: the blocks already read, then what ``more`` gives ("" at the end)."""

    def __init__(self, blocks: list[str], more: Callable[[], str]) -> None:
        super().__init__()
        self.blocks = blocks
        self.more = more

    def read(self, size: int | None = -1) -> str:
        return self.blocks.pop(0) if self.blocks else self.more()


def validated(stream: Iterable[str], report: ImportReport, lenient: bool) -> Iterator[Pending]:
    """``_validate(stream, report, lenient)``, checked in worker processes when the input is big."""
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
    yield from _in_workers(_Blocks(head, lambda: str(read(READ))), report, lenient)


def _blocks_of(read: Callable[[int], str]) -> Iterator[tuple[int, str]]:
    """(number of its first line, text) of each block of what ``read`` gives: about READ characters, cut where
    ``_CUT`` finds the end of an empty line; the last block is what is left after the last cut."""
    line, rest = 1, ""
    while text := read(READ):
        rest += text
        while cut := _CUT.search(rest, READ):
            block, rest = rest[:cut.end()], rest[cut.end():]
            yield line, block
            line += block.count("\n")
    if rest:
        yield line, rest


def _put(into: queue.Queue[_T], item: _T, stop: threading.Event) -> bool:
    """Put ``item`` when there is room; False (not put) once ``stop`` is set."""
    while not stop.is_set():
        try:
            into.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def _start(lenient: bool) -> subprocess.Popen[bytes]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "sds_registry.ldap.ldif_worker", str(int(lenient))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def _in_workers(source: _Blocks, report: ImportReport, lenient: bool) -> Iterator[Pending]:
    workers = [_start(lenient) for _ in range(WORKERS)]
    count = len(workers)
    failed: list[BaseException] = []
    stop = threading.Event()
    sending: list[queue.Queue[tuple[bytes, bytes] | None]] = [queue.Queue(QUEUED) for _ in workers]
    received: list[queue.Queue[list[tuple[Any, ...]] | None]] = [queue.Queue(AHEAD) for _ in workers]

    def feed() -> None:
        """Cut the text into blocks for the workers in turn; a failure of the stream is raised in the caller's
        thread (the workers are told the text ended: they answer "done")."""
        try:
            for k, (line, text) in enumerate(_blocks_of(source.read)):
                data = text.encode("utf-8", "surrogatepass")
                if not _put(sending[k % count], (_FRAME.pack(line, len(data)), data), stop):
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, which raises it)
            failed.append(exc)
        for frames in sending:
            _put(frames, None, stop)  # the end of the text (an early one when reading failed)

    def send(pipe: IO[bytes], frames: queue.Queue[tuple[bytes, bytes] | None]) -> None:
        """Write one worker's blocks to its stdin; None (or a stop) closes it."""
        try:
            while not stop.is_set():
                try:
                    frame = frames.get(timeout=0.5)
                except queue.Empty:
                    continue
                if frame is None:
                    break
                pipe.write(frame[0])
                pipe.write(frame[1])
                pipe.flush()
        except OSError:
            pass  # the worker is gone: the caller says so
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def receive(results: IO[bytes], batches: queue.Queue[list[tuple[Any, ...]] | None]) -> None:
        """Read one worker's messages ahead of the caller (None: its output ended). A pipe holds 64 KiB, a
        few dozen records: without this the worker would wait each time the caller stores a chunk."""
        batch: list[tuple[Any, ...]] | None = []
        while batch is not None and not stop.is_set():
            try:
                batch = pickle.load(results)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError):
                batch = None  # the end, early or not: the caller looks at the worker
            _put(batches, batch, stop)

    threads = [threading.Thread(target=feed, name="sds-ldif-feed", daemon=True)]
    for i, worker in enumerate(workers):
        assert worker.stdin is not None and worker.stdout is not None
        threads.append(threading.Thread(target=send, args=(worker.stdin, sending[i]), name=f"sds-ldif-send-{i}",
                                        daemon=True))
        threads.append(threading.Thread(target=receive, args=(worker.stdout, received[i]),
                                        name=f"sds-ldif-receive-{i}", daemon=True))
    for thread in threads:
        thread.start()
    ended = False
    try:
        k = 0
        while True:
            got = received[k % count].get()
            if got is None:
                worker = workers[k % count]
                raise RuntimeError(f"LDIF checking process {k % count + 1} of {count} ended early (exit code "
                                   f"{worker.wait()})") from None
            for item in got:
                if len(item) == 5:
                    yield Pending(_CLASSES[item[0]], item[1], item[2], item[3], item[4])
                elif item[0] == "rejected":
                    report.rejected.append(item[1])
                elif item[0] == "skipped":
                    report.skipped.append(item[1])
                elif item[0] == "block":  # the last item of its message: the next block is the next worker's
                    k += 1
                elif item[0] == "error":
                    raise RuntimeError(f"LDIF checking process {k % count + 1} of {count} failed:\n{item[1]}")
                else:  # "done": this worker had no block k, so there is none: the text ended
                    threads[0].join()  # the feeder: it has told every worker the text ended
                    if failed:
                        raise failed[0]
                    ended = True
                    return
            if failed:
                raise failed[0]
    finally:
        stop.set()
        for worker in workers:
            try:
                worker.wait(5 if ended else 0)  # after the end the workers exit of themselves
            except subprocess.TimeoutExpired:
                worker.kill()  # an early end (a failure here, or the caller stopped reading)
                worker.wait()
        for thread in threads:
            thread.join(5)
        for worker in workers:
            assert worker.stdout is not None
            worker.stdout.close()


def _work(text: IO[bytes], out: IO[bytes], lenient: bool) -> None:
    """The worker: validate each block of ``text`` (a frame, then its UTF-8 bytes), writing its records,
    rejections and skips to ``out`` in their order, then a block-end marker; at the end of ``text``, "done"."""
    report = ImportReport()
    batch: list[tuple[Any, ...]] = []

    def notes() -> None:
        batch.extend(("rejected", r) for r in report.rejected)
        batch.extend(("skipped", s) for s in report.skipped)
        report.rejected.clear()
        report.skipped.clear()

    def send() -> None:
        nonlocal batch
        pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        batch = []

    try:
        while frame := text.read(_FRAME.size):
            first_line, size = _FRAME.unpack(frame)
            data = text.read(size)
            if len(data) != size:
                raise EOFError(f"a block of {size} bytes ended after {len(data)}")
            block = _Blocks([data.decode("utf-8", "surrogatepass")], str)  # not StringIO: 4 bytes a character
            del data
            for p in _validate(block, report, lenient, first_line):
                if report.rejected or report.skipped:
                    notes()
                batch.append((p.cls.name, p.dn, p.values, p.flags, p.line))
                if len(batch) >= BATCH:
                    send()
            notes()
            batch.append(("block",))
            send()
        batch.append(("done",))
    except BaseException:  # noqa: BLE001  (a bug: told to the caller, which raises)
        import traceback

        batch = [("error", traceback.format_exc())]
    send()


if __name__ == "__main__":
    import gc

    gc.set_threshold(50_000, 20, 100)  # as the CLI's bulk load: records live a batch, rescanning them is waste
    results_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but batches goes to the caller's pipe
    _work(sys.stdin.buffer, results_out, sys.argv[1] == "1")
