"""LDIF reading (what ldapsearch -LLL prints) and line writing. Pure parts of ldif.py."""

from __future__ import annotations

import io

import pytest

from sds_registry.ldap import ldif

DUMP = """version: 1

# extended LDIF
# search result
dn: uniqueIdentifier=200000000149,ou=Services,o=nhs
objectClass: nhsas
objectClass: top
nhsAsSvcIA: urn:nhs:names:services:gp2gp:RCMR_IN0100
 00UK05
NHSIDCODE: M85019
nhsProductName:: U3lzdG1PbmUgw6k=
# a comment
 that continues

dn: o=nhs
objectClass: organization
"""


def test_read_entries_handles_folding_base64_comments_and_case() -> None:
    entries = list(ldif.read_entries(io.StringIO(DUMP)))
    assert [d for d, _ in entries] == ["uniqueIdentifier=200000000149,ou=Services,o=nhs", "o=nhs"]
    attrs = entries[0][1]
    assert ("nhsAsSvcIA", "urn:nhs:names:services:gp2gp:RCMR_IN010000UK05") in attrs
    assert ("NHSIDCODE", "M85019") in attrs
    assert ("nhsProductName", "SystmOne é") in attrs
    assert ldif._classify(attrs) is not None and ldif._classify(entries[1][1]) is None


@pytest.mark.parametrize(
    "text",
    [
        "dn: x\nchangetype: add\n",
        "objectClass: top\n",
        "dn: x\nno colon here\n",
        "dn: x\njpegPhoto:< file:///etc/passwd\n",
    ],
)
def test_read_entries_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        list(ldif.read_entries(io.StringIO(text)))


@pytest.mark.parametrize("value", ["plain", " leading space", ":colon", "<lt", "trailing ", "é", "a\nb", "x" * 200])
def test_written_lines_read_back(value: str) -> None:
    text = ldif.ldif_line("dn", "o=nhs") + ldif.ldif_line("description", value) + "\n"
    assert all(len(line) <= 76 for line in text.splitlines())
    assert list(ldif.read_entries(io.StringIO(text))) == [("o=nhs", [("description", value)])]
