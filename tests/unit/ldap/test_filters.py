"""RFC 4515 filter strings, the reference evaluator's semantics, and what the translator folds away."""

from __future__ import annotations

import pytest

from sds_registry.ldap import ast, dit, evaluate, filters
from sds_registry.ldap.filterstr import FilterSyntaxError, format_filter, parse_filter

AS_ENTRY = {
    "objectClass": ["top", "nhsAs"],
    "uniqueIdentifier": ["012345678901"],
    "nhsIDCode": ["A12345"],
    "nhsMHSPartyKey": ["A12345-1234567"],
    "nhsAsSvcIA": ["urn:a:b", "urn:a:c"],
    "nhsProductName": ["Provider4 GP"],
    "nhsDateApproved": ["20200101120000"],
    "hasSubordinates": ["FALSE"],
    "entryDN": ["uniqueIdentifier=012345678901,ou=Services,o=nhs"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(a=b)", ast.Equality("a", "b")),
        ("a=b", ast.Equality("a", "b")),
        ("(&(a=b) (c=d))", ast.And((ast.Equality("a", "b"), ast.Equality("c", "d")))),
        ("( | (a=b)(!(c=*)) )", ast.Or((ast.Equality("a", "b"), ast.Not(ast.Present("c"))))),
        ("(a=x*)", ast.Substrings("a", "x", (), None)),
        ("(a=*x*y*)", ast.Substrings("a", None, ("x", "y"), None)),
        ("(a=x*y)", ast.Substrings("a", "x", (), "y")),
        ("(a=\\2a\\28\\29\\5c)", ast.Equality("a", "*()\\")),
        ("(a=\\c3\\a9)", ast.Equality("a", "é")),
        ("(a>=1)", ast.GreaterOrEqual("a", "1")),
        ("(a<=1)", ast.LessOrEqual("a", "1")),
        ("(a~=x)", ast.Approx("a", "x")),
        ("(a:dn:caseExactMatch:=x)", ast.Extensible("caseExactMatch", "a", "x", True)),
        ("(:2.5.13.2:=x)", ast.Extensible("2.5.13.2", None, "x", False)),
        ("(a=)", ast.Equality("a", "")),
        ("(&)", ast.And(())),
    ],
)
def test_parse(text: str, expected: ast.Filter) -> None:
    assert parse_filter(text) == expected
    assert parse_filter(format_filter(expected)) == expected


@pytest.mark.parametrize(
    "text", ["(a=b", "(a=b))", "(!(a=b)(c=d))", "(a=\\zz)", "(=b)", "(a=b)(c=d)", "(a=**)", "(a b=c)", "(a=(b))"]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


@pytest.mark.parametrize(
    ("value", "initial", "any_", "final", "expected"),
    [
        ("abc", "ab", (), "bc", False),  # initial and final must not overlap
        ("abbc", "ab", (), "bc", True),
        ("aXbXc", None, ("X", "X"), None, True),
        ("aXbc", None, ("X", "X"), None, False),
        ("abc", "a", ("b",), "c", True),
        ("ab", "a", ("b",), "b", False),
        ("abc", None, (), "abc", True),
    ],
)
def test_substring_semantics(
    value: str, initial: str | None, any_: tuple[str, ...], final: str | None, expected: bool
) -> None:
    assert evaluate.substring_match(value, initial, any_, final) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(nhsIDCode=A12345)", True),
        ("(nhsIDCode=a12345)", False),  # caseExactMatch
        ("(NHSIDCODE=A12345)", True),  # names in any case
        ("(nhsMHSPartyKey=a12345-1234567)", True),  # caseIgnoreMatch
        ("(nhsProductName=  provider4   gp )", True),  # RFC 4518 insignificant spaces
        ("(nhsAsSvcIA=urn:a:c)", True),
        ("(objectClass=NHSAS)", True),
        ("(objectClass=top)", True),
        ("(objectClass=noSuchClass)", None),
        ("(!(objectClass=noSuchClass))", None),
        ("(noSuchAttribute=1)", None),
        ("(!(noSuchAttribute=1))", None),
        ("(|(noSuchAttribute=1)(nhsIDCode=A12345))", True),
        ("(&(noSuchAttribute=1)(nhsIDCode=B1))", False),
        ("(nhsMHSActor=x)", False),  # known attribute the entry lacks: FALSE, so NOT gives TRUE
        ("(!(nhsMHSActor=x))", True),
        ("(nhsIDCode>=A)", None),  # no ORDERING rule
        ("(nhsDateApproved>=20200101120000)", True),
        ("(nhsDateApproved<=2019)", False),
        ("(nhsMHSIsAuthenticated=*on*)", False),  # has SUBSTR rule? no: but attribute absent... see below
        ("(uniqueIdentifier=0123*)", None),  # uniqueIdentifier has no SUBSTR rule
        ("(nhsIDCode=A1*)", True),
        ("(nhsIDCode=a1*)", False),
        ("(nhsMHSPartyKey=a1*-*7)", True),
        ("(nhsProductName~=PROVIDER4 gp)", True),
        ("(nhsIDCode:caseIgnoreMatch:=a12345)", True),
        ("(nhsIDCode:=a12345)", False),
        ("(ou:dn:=services)", True),
        ("(nhsIDCode:1.2.3.4:=A12345)", None),
        ("(hasSubordinates=FALSE)", True),
        ("(entryDN=UNIQUEIDENTIFIER=012345678901, ou=services,o=NHS)", True),
        ("(nhsAsClient=*)", False),
        ("(nhsIDCode=)", None),
    ],
)
def test_evaluate(text: str, expected: bool | None) -> None:
    f = parse_filter(text)
    if text == "(nhsMHSIsAuthenticated=*on*)":
        assert evaluate.evaluate(f, AS_ENTRY) is None  # no SUBSTR rule: Undefined
        return
    entry = dict(AS_ENTRY, ou=[]) if text.startswith("(ou:") else AS_ENTRY
    assert evaluate.evaluate(f, entry, AS_ENTRY["entryDN"][0]) is expected


def _translate(text: str, cls: dit.EntryClass) -> filters.Pred:
    key, _ = filters.prepare(parse_filter(text), "sqlite")
    return filters.translate(key, cls.view(), "sqlite")


def test_object_class_prunes_the_other_class() -> None:
    text = "(&(nhsIDCode=A12345)(objectClass=nhsMhs)(nhsMhsSvcIA=urn:x))"
    assert _translate(text, dit.AS) is False
    assert _translate(text, dit.MHS) is not False
    assert _translate("(objectClass=nhsAs)", dit.AS) is True
    assert _translate("(!(objectClass=*))", dit.MHS) is False


def test_undefined_stays_undefined_under_not() -> None:
    assert _translate("(!(noSuchAttribute=1))", dit.AS) is False
    assert _translate("(!(nhsIDCode>=A))", dit.MHS) is False
    assert _translate("(!(!(noSuchAttribute=1)))", dit.MHS) is False
    # an attribute the class does not hold is FALSE, so its negation is TRUE
    assert _translate("(!(nhsMhsSvcIA=x))", dit.AS) is True


def test_shape_is_independent_of_values_and_folds_case() -> None:
    k1, p1 = filters.prepare(parse_filter("(&(nhsIDCode=A1)(nhsMHSPartyKey=A1-99))"), "sqlite")
    k2, p2 = filters.prepare(parse_filter("(&(nhsidcode=B2)(NHSMHSPARTYKEY=b2-77))"), "sqlite")
    assert k1 == k2
    assert p1 == {"p0": "A1", "p1": "a1-99"} and p2 == {"p0": "B2", "p1": "b2-77"}


def test_substring_patterns_are_escaped() -> None:
    _, like = filters.prepare(parse_filter("(nhsMHSPartyKey=a%_\\5c*b)"), "postgresql")
    assert like == {"p0": "a\\%\\_\\\\%b"}
    _, glob = filters.prepare(parse_filter("(nhsIDCode=[*\\2a?*)"), "sqlite")
    assert glob == {"p0": "[[]*[*][?]*"}
