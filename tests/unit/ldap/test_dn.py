"""RFC 4514 DN parsing, escaping and normalisation."""

from __future__ import annotations

import pytest

from sds_registry.ldap import dn


@pytest.mark.parametrize(
    ("text", "rdns"),
    [
        ("", []),
        ("o=nhs", [(("o", "nhs"),)]),
        ("ou=services, o=nhs", [(("ou", "services"),), (("o", "nhs"),)]),
        ("OU = Services ,O=NHS", [(("ou", "Services"),), (("o", "NHS"),)]),
        ("uniqueIdentifier=a\\,b,o=nhs", [(("uniqueIdentifier", "a,b"),), (("o", "nhs"),)]),
        ("UNIQUEIDENTIFIER=x+cn=y;o=nhs", [(("uniqueIdentifier", "x"), ("cn", "y")), (("o", "nhs"),)]),
        ("cn=\\c3\\a9t\\C3\\A9", [(("cn", "été"),)]),
        ("cn=\\ a\\ ", [(("cn", " a "),)]),
        ("cn=#0403616263", [(("cn", "abc"),)]),
        ("2.5.4.10=nhs", [(("o", "nhs"),)]),
        ("cn=a=b", [(("cn", "a=b"),)]),
    ],
)
def test_parse(text: str, rdns: list[dn.Rdn]) -> None:
    assert dn.parse(text) == rdns


@pytest.mark.parametrize(
    "text",
    ["ou=Services,,o=nhs", "o", "=x", "noSuchAttr=x,o=nhs", "cn=a\\zz", "cn=a<b", "cn=", "1cn=x", "cn=#zz", ",o=nhs"],
)
def test_invalid(text: str) -> None:
    with pytest.raises(dn.InvalidDN):
        dn.parse(text)


def test_normalise_compares_case_and_spacing_insensitively() -> None:
    a = dn.normalised_key("uniqueIdentifier=ABC,ou=Services,o=nhs")
    b = dn.normalised_key("UNIQUEIDENTIFIER=abc , OU=services,  O=NHS")
    assert a == b
    assert dn.normalised_key("cn=x+o=y") == dn.normalised_key("o=Y+CN=X")


@pytest.mark.parametrize("value", ["plain", "a,b", " lead", "trail ", "#hash", 'a+b=c;d<e>f"g\\h', "x\x00y"])
def test_escape_round_trips(value: str) -> None:
    assert dn.parse(dn.format_dn([(("cn", value),)])) == [(("cn", value),)]
