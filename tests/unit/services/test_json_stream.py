"""The incremental reader of the JSON import format: same items as json.loads, at any read size, with lines."""

from __future__ import annotations

import io
import json

import pytest

from sds_registry.services import json_stream

DOCUMENT = {
    "organisations": [{"ods_code": "A12345", "name": "Dr \"Quoted\" Surgery, \u00e9"}, {"ods_code": "B1", "n": 12345}],
    "empty": [],
    "accredited_systems": [{"asid": "012345678901", "interactions": ["urn:a", "urn:b"], "retries": 3.5e2}],
}


@pytest.mark.parametrize("read", [1, 2, 7, 64, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_items_match_json_loads_at_any_read_size(monkeypatch: pytest.MonkeyPatch, read: int,
                                                 indent: int | None) -> None:
    monkeypatch.setattr(json_stream, "READ", read)
    text = json.dumps(DOCUMENT, indent=indent)
    got = [(s, i, item) for s, i, _line, item in json_stream.items(io.StringIO(text))]
    assert got == [(s, i, item) for s, items in DOCUMENT.items() for i, item in enumerate(items)]


def test_lines_are_where_each_item_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "READ", 5)
    text = '{\n "a": [\n  {"x": 1},\n\n  {"x": 2}\n ],\n "b": {"not": "a list"}\n}\n'
    assert [(s, i, line) for s, i, line, _ in json_stream.items(io.StringIO(text))] == [
        ("a", 0, 3), ("a", 1, 5), ("b", -1, 7)]


@pytest.mark.parametrize(("text", "where"), [
    ('{\n "a": [\n  {"x": }\n ]\n}', "line 3 column 9"),
    ('[1, 2]', "line 1 column 1"),
    ('{"a": [1, 2}', "line 1 column 12"),
    ('{"a": []} trailing', "line 1 column 11"),
    ('{"a": [1,', "line 1 column 10"),
])
def test_errors_name_line_and_column(monkeypatch: pytest.MonkeyPatch, text: str, where: str) -> None:
    monkeypatch.setattr(json_stream, "READ", 3)
    with pytest.raises(json_stream.JsonFormatError, match=where):
        list(json_stream.items(io.StringIO(text)))


@pytest.mark.parametrize("read", [3, 64, 1 << 16])
def test_lines_of_many_items_across_reads(monkeypatch: pytest.MonkeyPatch, read: int) -> None:
    """Lines are counted on from the last item asked about, not from the buffer's start each time: the same
    answers, item after item, across reads (indented, so items start on every other line)."""
    monkeypatch.setattr(json_stream, "READ", read)
    document = {"a": [{"n": n, "text": "x\\n" * (n % 3)} for n in range(200)], "b": [{"m": 1}, {"m": 2}]}
    text = json.dumps(document, indent=1)
    lines = text.split("\n")
    starts = [i + 1 for i, line in enumerate(lines) if line in (" {", "  {")]
    got = [line for _, _, line, _ in json_stream.items(io.StringIO(text))]
    assert got == starts and len(got) == 202
    broken = text[:-30] + "?" + text[-29:]  # an error after all those items still names its own line
    with pytest.raises(json_stream.JsonFormatError, match=f"line {broken[:-29].count(chr(10)) + 1} "):
        list(json_stream.items(io.StringIO(broken)))
