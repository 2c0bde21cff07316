"""Reading a JSON object of lists (the import format) incrementally: one list item at a time, in bounded memory.

``items(stream)`` yields (section, index, line, item) for ``{"section": [item, item, ...], ...}`` however the
file is laid out (any whitespace), reading 64 KiB at a time and decoding each item with the standard
library's ``json.JSONDecoder.raw_decode``. Memory holds one item and the read buffer, never the document.
Pure: no Session; raises ``JsonFormatError`` naming the line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
READ = 1 << 16


class JsonFormatError(ValueError):
    """The text is not JSON, or not an object of lists; the message names the line and column."""


class _Reader:
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number of buf[0]
        self.line_start = 0  # offset in buf where self.line starts (may be negative once dropped)
        self.eof = False
        # where() counted lines up to mark: (offset in buf, its line, offset where that line starts), so asking
        # for each item's line counts each stretch of the buffer once, not from its start every time
        self.mark = (0, 1, 0)

    def _fill(self) -> bool:
        if self.eof:
            return False
        more = self.stream.read(READ)
        if not more:
            self.eof = True
            return False
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.line += newlines
            self.line_start = dropped.rindex("\n") + 1 - self.pos
        else:
            self.line_start -= self.pos
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        self.mark = (0, self.line, self.line_start)
        return True

    def where(self, pos: int | None = None) -> tuple[int, int]:
        """(line, column) of ``pos`` in the buffer (default: the current position)."""
        pos = self.pos if pos is None else pos
        start, line, line_start = self.mark if pos >= self.mark[0] else (0, self.line, self.line_start)
        newlines = self.buf.count("\n", start, pos)
        if newlines:
            line += newlines
            line_start = self.buf.rindex("\n", start, pos) + 1
        self.mark = (pos, line, line_start)
        return line, pos - line_start + 1

    def fail(self, message: str, pos: int | None = None) -> JsonFormatError:
        line, column = self.where(pos)
        return JsonFormatError(f"line {line} column {column}: {message}")

    def peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self._fill():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            got = self.buf[self.pos : self.pos + 20] or "the end of the file"
            raise self.fail(f"expected {char!r}, found {got!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise self.fail(exc.msg, exc.pos) from None
            except RecursionError:  # the decoder recurses per nesting level; no record nests anywhere near
                raise self.fail("arrays or objects nested too deep", self.pos) from None
            if end == len(self.buf) and self._fill():
                continue  # a number may go on in the next read
            self.pos = end
            return value


def items(stream: IO[str]) -> Iterator[tuple[str, int, int, Any]]:
    """(section, index, line, item) for every item of every list of the top-level object, in file order.
    A section whose value is not a list yields once with index -1 and the value."""
    r = _Reader(stream)
    r.expect("{")
    if r.peek() == "}":
        r.pos += 1
    else:
        while True:
            section = r.value()
            if not isinstance(section, str):
                raise r.fail("expected a section name (a string)")
            r.expect(":")
            if r.peek() != "[":
                line = r.where()[0]
                yield section, -1, line, r.value()
            else:
                r.pos += 1
                index = 0
                if r.peek() == "]":
                    r.pos += 1
                else:
                    while True:
                        r.peek()
                        line = r.where()[0]
                        yield section, index, line, r.value()
                        index += 1
                        if r.peek() == ",":
                            r.pos += 1
                            continue
                        r.expect("]")
                        break
            if r.peek() == ",":
                r.pos += 1
                continue
            r.expect("}")
            break
    if r.peek():
        raise r.fail("text after the end of the JSON object")
