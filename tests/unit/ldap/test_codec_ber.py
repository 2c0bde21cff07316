"""The BER codec against bytes that ldap3 (with pyasn1) encodes, and its own encoders read back by ldap3."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 0.6 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3  # noqa: F401
from ldap3.operation.abandon import abandon_operation
from ldap3.operation.add import add_operation
from ldap3.operation.bind import bind_operation
from ldap3.operation.compare import compare_operation
from ldap3.operation.delete import delete_operation
from ldap3.operation.extended import extended_operation
from ldap3.operation.modify import modify_operation
from ldap3.operation.modifyDn import modify_dn_operation
from ldap3.operation.search import search_operation
from ldap3.operation.unbind import unbind_operation
from ldap3.protocol.controls import build_control
from ldap3.protocol.rfc2696 import paged_search_control
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.conv import escape_filter_chars
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder

from sds_registry.ldap import codec, responses
from sds_registry.ldap.ast import (
    And,
    Approx,
    Control,
    DerefAliases,
    Equality,
    Extensible,
    GreaterOrEqual,
    LessOrEqual,
    Not,
    Or,
    Present,
    Scope,
    SearchEntry,
    SearchRequest,
    Substrings,
)

BASE = "ou=services, o=nhs"


def ldap3_bytes(message_id: int, op_name: str, request: object, controls: list[object] | None = None) -> bytes:
    """What an ldap3 client puts on the wire for this request."""
    from ldap3.protocol.convert import build_controls_list

    msg = LDAPMessage()
    msg["messageID"] = MessageID(message_id)
    msg["protocolOp"] = ProtocolOp().setComponentByName(op_name, request)
    built = build_controls_list(controls)
    if built is not None:
        msg["controls"] = built
    return bytes(ber_encoder.encode(msg))


def search_bytes(flt: str, attributes: list[str] | None = None, message_id: int = 1, **kw: object) -> bytes:
    request = search_operation(
        kw.get("base", BASE),
        flt,
        kw.get("scope", "SUBTREE"),
        kw.get("deref", "NEVER"),
        attributes if attributes is not None else [],
        kw.get("size_limit", 0),
        kw.get("time_limit", 0),
        kw.get("types_only", False),
        True,
        False,
    )
    return ldap3_bytes(message_id, "searchRequest", request, kw.get("controls"))  # type: ignore[arg-type]


def decode_search(flt: str, **kw: object) -> SearchRequest:
    msg = codec.decode_message(search_bytes(flt, **kw))  # type: ignore[arg-type]
    assert isinstance(msg.op, SearchRequest)
    return msg.op


# ---- searches and filters ---------------------------------------------------------------------------------


def test_gp_connect_mhs_lookup_as_documented() -> None:
    """The GP Connect page's query, spaces between sub-filters and lower-case attribute name included."""
    flt = (
        "(&(nhsidcode=T99999) (objectClass=nhsMhs)"
        " (nhsMhsSvcIA=urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1))"
    )
    msg = codec.decode_message(search_bytes(flt, ["nhsMhsEndPoint", "nhsMhsPartyKey"], message_id=7))
    assert msg.message_id == 7
    assert msg.controls == ()
    assert msg.op == SearchRequest(
        base=BASE,
        scope=Scope.SUB,
        deref=DerefAliases.NEVER,
        size_limit=0,
        time_limit=0,
        types_only=False,
        filter=And(
            (
                Equality("nhsidcode", "T99999"),
                Equality("objectClass", "nhsMhs"),
                Equality("nhsMhsSvcIA", "urn:nhs:names:services:gpconnect:fhir:operation:gpc.getstructuredrecord-1"),
            )
        ),
        attributes=("nhsMhsEndPoint", "nhsMhsPartyKey"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(uniqueIdentifier=200000000149)", Equality("uniqueIdentifier", "200000000149")),
        ("(objectClass=*)", Present("objectClass")),
        ("(nhsDateApproved>=20150302000000)", GreaterOrEqual("nhsDateApproved", "20150302000000")),
        ("(nhsDateApproved<=20150302000000)", LessOrEqual("nhsDateApproved", "20150302000000")),
        ("(nhsProductName~=systmone)", Approx("nhsProductName", "systmone")),
        ("(nhsAsSvcIA=urn:nhs:gpconnect*)", Substrings("nhsAsSvcIA", "urn:nhs:gpconnect", (), None)),
        ("(cn=*a*b*)", Substrings("cn", None, ("a", "b"), None)),
        ("(cn=x*y)", Substrings("cn", "x", (), "y")),
        ("(cn=*end)", Substrings("cn", None, (), "end")),
        ("(!(objectClass=nhsAs))", Not(Equality("objectClass", "nhsAs"))),
        ("(|(a=1)(b=2))", Or((Equality("a", "1"), Equality("b", "2")))),
        ("(cn=a\\2ab\\28\\29\\5c)", Equality("cn", "a*b()\\")),
        ("(cn=caf\\c3\\a9)", Equality("cn", "café")),
        ("(cn:caseExactMatch:=Fred)", Extensible("caseExactMatch", "cn", "Fred", False)),
        ("(:dn:2.5.13.5:=Fred)", Extensible("2.5.13.5", None, "Fred", True)),
        ("(cn:dn:=Fred)", Extensible(None, "cn", "Fred", True)),
    ],
)
def test_filter_choices(text: str, expected: object) -> None:
    assert decode_search(text).filter == expected


def test_deeply_nested_filter_decodes() -> None:
    """ldap3's own rfc4511 cannot decode this under pyasn1 0.6; ours must."""
    flt = "(&(|(!(a=1))(&(b=2)(|(c=3)(!(d=*)))))(e=x*y*z))"
    assert decode_search(flt).filter == And(
        (
            Or((Not(Equality("a", "1")), And((Equality("b", "2"), Or((Equality("c", "3"), Not(Present("d")))))))),
            Substrings("e", "x", ("y",), "z"),
        )
    )


def test_filter_depth_limit_is_a_request_error() -> None:
    flt = "(!" * (codec.MAX_FILTER_DEPTH + 2) + "(a=1)" + ")" * (codec.MAX_FILTER_DEPTH + 2)
    with pytest.raises(codec.RequestError) as info:
        codec.decode_message(search_bytes(flt, message_id=9))
    assert info.value.message_id == 9
    assert info.value.request_tag == codec.SEARCH


@pytest.mark.parametrize(("scope", "expected"), [("BASE", Scope.BASE), ("LEVEL", Scope.ONE), ("SUBTREE", Scope.SUB)])
def test_search_scopes_limits_and_flags(scope: str, expected: Scope) -> None:
    req = decode_search(
        "(a=b)", scope=scope, deref="ALWAYS", size_limit=500, time_limit=30, types_only=True, attributes=["1.1"]
    )
    assert (req.scope, req.deref, req.size_limit, req.time_limit, req.types_only, req.attributes) == (
        expected,
        DerefAliases.ALWAYS,
        500,
        30,
        True,
        ("1.1",),
    )


def _raw_search(scalars: bytes) -> bytes:
    """A SearchRequest for base "o=nhs", filter (a=b), no attributes, with the scalar fields given as BER."""
    op = codec.tlv(b"\x63", codec.octets("o=nhs") + scalars + b"\xa3\x06\x04\x01a\x04\x01b" + b"\x30\x00")
    return codec.tlv(b"\x30", b"\x02\x01\x07" + op)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 500, 2**31 - 1])
def test_scalar_fields_read_in_place_or_in_general_agree(size: int) -> None:
    """One content byte each takes the in-place path; the same values in longer (still valid) forms the general one."""
    short = _raw_search(b"\x0a\x01\x02\x0a\x01\x03\x02\x01\x05\x02\x01\x1e\x01\x01\xff")
    padded = _raw_search(b"\x0a\x02\x00\x02\x0a\x01\x03\x02\x02\x00\x05\x02\x01\x1e\x01\x01\xff")
    assert codec.decode_message(short) == codec.decode_message(padded)
    req = codec.decode_message(short).op
    assert isinstance(req, SearchRequest)
    assert (req.scope, req.deref, req.size_limit, req.time_limit, req.types_only) == (Scope.SUB, DerefAliases.ALWAYS,
                                                                                      5, 30, True)
    op = codec.decode_message(_raw_search(b"\x0a\x01\x00\x0a\x01\x00" + codec.encode_int(size)
                                          + b"\x02\x01\x00\x01\x01\x00")).op  # fmt: skip
    assert isinstance(op, SearchRequest) and op.size_limit == size


@pytest.mark.parametrize(
    ("scalars", "message"),
    [
        (b"\x0a\x01\x03\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00", "scope or derefAliases out of range"),
        (b"\x0a\x01\xff\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00", "scope or derefAliases out of range"),
        (b"\x0a\x01\x00\x0a\x01\x04\x02\x01\x00\x02\x01\x00\x01\x01\x00", "scope or derefAliases out of range"),
        (b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x80\x02\x01\x00\x01\x01\x00", "sizeLimit or timeLimit out of range"),
        (b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\xff\x01\x01\x00", "sizeLimit or timeLimit out of range"),
        (b"\x0a\x02\xff\xff\x0a\x01\x00\x02\x01\x00\x02\x01\x00\x01\x01\x00",
         "scope or derefAliases out of range"),
    ],
)
def test_scalar_fields_out_of_range_are_request_errors(scalars: bytes, message: str) -> None:
    with pytest.raises(codec.RequestError, match=message) as info:
        codec.decode_message(_raw_search(scalars))
    assert info.value.message_id == 7


def test_paged_results_control() -> None:
    raw = search_bytes("(a=b)", controls=[paged_search_control(True, 25, b"\x01\x02")], message_id=300)
    msg = codec.decode_message(raw)
    assert msg.message_id == 300
    (ctl,) = msg.controls
    assert (ctl.oid, ctl.critical) == (codec.PAGED_RESULTS, True)
    assert codec.decode_paged_control(ctl.value) == (25, b"\x01\x02")


def test_control_without_value() -> None:
    raw = search_bytes("(a=b)", controls=[build_control("2.16.840.1.113730.3.4.2", False, None)])
    assert codec.decode_message(raw).controls == (Control("2.16.840.1.113730.3.4.2", False, None),)


def test_non_utf8_assertion_is_a_request_error() -> None:
    raw = search_bytes("(cn=" + escape_filter_chars("x") + "\\ff)")
    with pytest.raises(codec.RequestError):
        codec.decode_message(raw)


# ---- other requests -----------------------------------------------------------------------------------------


def test_simple_bind() -> None:
    req = bind_operation(3, "SIMPLE", "cn=admin,o=nhs", "secret")
    msg = codec.decode_message(ldap3_bytes(1, "bindRequest", req))
    assert msg.op == codec.BindRequest(3, "cn=admin,o=nhs", b"secret")


def test_anonymous_bind() -> None:
    msg = codec.decode_message(ldap3_bytes(1, "bindRequest", bind_operation(3, "ANONYMOUS", "", "")))
    assert msg.op == codec.BindRequest(3, "", b"")


def test_sasl_bind() -> None:
    req = bind_operation(3, "SASL", "", None, "EXTERNAL", b"")
    msg = codec.decode_message(ldap3_bytes(1, "bindRequest", req))
    assert msg.op == codec.BindRequest(3, "", None, "EXTERNAL")


def test_unbind_abandon_compare_extended() -> None:
    assert codec.decode_message(ldap3_bytes(4, "unbindRequest", unbind_operation())).op == codec.UnbindRequest()
    assert codec.decode_message(ldap3_bytes(5, "abandonRequest", abandon_operation(3))).op == codec.AbandonRequest(3)
    cmp = compare_operation("uniqueIdentifier=1,ou=services,o=nhs", "nhsIDCode", "T99999", False)
    assert codec.decode_message(ldap3_bytes(6, "compareRequest", cmp)).op == codec.CompareRequest(
        "uniqueIdentifier=1,ou=services,o=nhs", "nhsIDCode", "T99999"
    )
    who = extended_operation("1.3.6.1.4.1.4203.1.11.3")
    assert codec.decode_message(ldap3_bytes(7, "extendedReq", who)).op == codec.ExtendedRequest(
        "1.3.6.1.4.1.4203.1.11.3", None
    )
    other = extended_operation("1.2.3.4", b"payload", no_encode=True)
    assert codec.decode_message(ldap3_bytes(8, "extendedReq", other)).op == codec.ExtendedRequest("1.2.3.4", b"payload")


def test_write_requests_decode_far_enough_to_refuse() -> None:
    dn = "uniqueIdentifier=1,ou=services,o=nhs"
    cases = [
        ("addRequest", add_operation(dn, {"objectClass": ["nhsAs"], "nhsIDCode": "A1"}, False), codec.ADD, "add"),
        ("delRequest", delete_operation(dn), codec.DELETE, "delete"),
        (
            "modifyRequest",
            modify_operation(dn, {"nhsIDCode": [("MODIFY_REPLACE", ["B2"])]}, False),
            codec.MODIFY,
            "modify",
        ),
        ("modDNRequest", modify_dn_operation(dn, "uniqueIdentifier=2"), codec.MODDN, "modDN"),
    ]
    for name, req, tag, kind in cases:
        assert codec.decode_message(ldap3_bytes(2, name, req)).op == codec.UpdateRequest(kind, dn, tag)


# ---- framing ----------------------------------------------------------------------------------------------------


def test_split_messages_incremental() -> None:
    one = search_bytes("(a=b)", message_id=1)
    two = search_bytes("(c=d)", message_id=2)
    stream = one + two
    for cut in range(len(stream) + 1):
        got, used = codec.split_messages(stream[:cut], 1 << 20)
        expected = [m for m, end in ((one, len(one)), (two, len(stream))) if end <= cut]
        assert got == expected
        assert used == sum(len(m) for m in expected)


def test_split_messages_long_form_lengths() -> None:
    big = search_bytes("(a=b)", attributes=["x" * 100] * 5)
    assert big[1] == 0x82  # two length bytes
    assert codec.split_messages(big, 1 << 20) == ([big], len(big))
    # a non-minimal four-byte length, as some clients send, is still definite
    body = big[4:]
    padded = b"\x30\x84" + len(body).to_bytes(4, "big") + body
    assert codec.split_messages(padded, 1 << 20) == ([padded], len(padded))
    assert codec.decode_message(padded).message_id == 1


@pytest.mark.parametrize(
    "data",
    [b"\x31\x03\x02\x01\x01", b"\x30\x80\x02\x01\x01\x00\x00", b"\x30\x89" + b"\x00" * 9],
)
def test_split_messages_rejects_unframeable_input(data: bytes) -> None:
    with pytest.raises(codec.FramingError):
        codec.split_messages(data, 1 << 20)


def test_split_messages_size_limit_before_body_arrives() -> None:
    with pytest.raises(codec.MessageTooLarge):
        codec.split_messages(b"\x30\x84\x01\x00\x00\x00", 1 << 20)


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x03\x02\x01\x01",  # no protocolOp
        b"\x30\x05\x02\x01\x01\x7f\x00",  # unknown protocolOp
        b"\x30\x05\x04\x01\x01\x42\x00",  # messageID is not an INTEGER
        b"\x30\x05\x02\x01\xff\x42\x00",  # negative messageID
        b"\x31\x05\x02\x01\x01\x42\x00",  # not a SEQUENCE
    ],
)
def test_broken_envelope_is_a_framing_error(data: bytes) -> None:
    with pytest.raises(codec.FramingError):
        codec.decode_message(data)


def test_garbage_where_controls_belong_is_a_request_error() -> None:
    with pytest.raises(codec.RequestError) as info:
        codec.decode_message(b"\x30\x06\x02\x01\x04\x42\x00\x00")
    assert (info.value.message_id, info.value.request_tag) == (4, codec.UNBIND)


# ---- encoding, read back by ldap3/pyasn1 ---------------------------------------------------------------------------


def _ldap3_decode(data: bytes) -> tuple[int, str, object]:
    msg, rest = ber_decoder.decode(data, asn1Spec=LDAPMessage())
    assert rest == b""
    op = msg["protocolOp"]
    return int(msg["messageID"]), op.getName(), op.getComponent()


def test_search_entry_encoding_read_by_ldap3() -> None:
    entry = SearchEntry(
        "uniqueIdentifier=472b35d4641b76454b13,ou=Services,o=nhs",
        [
            ("nhsMHSEndPoint", ["https://pcs.thirdparty.nhs.uk/T99999/STU3/1/gpconnect/structured"]),
            ("nhsMHSPartyKey", ["T99999-9999999"]),
            ("objectClass", ["top", "nhsMhs"]),
            ("description", ["é" * 200]),
            ("empty", []),
        ],
    )
    for mid in (1, 127, 128, 5000, 2**31 - 1):
        msg_id, name, op = _ldap3_decode(responses.encode_search_entry(mid, entry))
        assert (msg_id, name) == (mid, "searchResEntry")
        assert str(op["object"]) == entry.dn
        got = [(str(a["type"]), [bytes(v).decode() for v in a["vals"]]) for a in op["attributes"]]
        assert got == entry.attributes


def test_search_done_and_results_read_by_ldap3() -> None:
    _, name, op = _ldap3_decode(responses.encode_search_done(3))
    assert name == "searchResDone" and int(op["resultCode"]) == 0
    _, name, op = _ldap3_decode(responses.encode_search_done(3, 32, "ou=services,o=nhs", "no such object"))
    assert (int(op["resultCode"]), str(op["matchedDN"]), str(op["diagnosticMessage"])) == (
        32,
        "ou=services,o=nhs",
        "no such object",
    )
    for tag, expected in [(0x61, "bindResponse"), (0x6F, "compareResponse"), (0x69, "addResponse")]:
        _, name, op = _ldap3_decode(responses.encode_result(2, tag, 53, "", "x" * 300))
        assert name == expected and int(op["resultCode"]) == 53 and str(op["diagnosticMessage"]) == "x" * 300


def test_extended_response_and_notice_read_by_ldap3() -> None:
    mid, name, op = _ldap3_decode(responses.encode_notice_of_disconnection(2, "bad"))
    assert (mid, name, str(op["responseName"]), int(op["resultCode"])) == (
        0,
        "extendedResp",
        codec.NOTICE_OF_DISCONNECTION,
        2,
    )
    _, _, op = _ldap3_decode(responses.encode_extended_response(4, 0, value=b"dn:cn=x"))
    assert bytes(op["responseValue"]) == b"dn:cn=x"


def test_paged_control_on_search_done_read_by_ldap3() -> None:
    from ldap3.protocol.rfc2696 import RealSearchControlValue

    data = responses.encode_search_done(5, controls=[responses.paged_control(40, b"cookie")])
    msg, _ = ber_decoder.decode(data, asn1Spec=LDAPMessage())
    ctl = msg["controls"][0]
    assert str(ctl["controlType"]) == codec.PAGED_RESULTS
    value, _ = ber_decoder.decode(bytes(ctl["controlValue"]), asn1Spec=RealSearchControlValue())
    assert (int(value["size"]), bytes(value["cookie"])) == (40, b"cookie")


def test_encode_length_forms() -> None:
    assert codec.encode_length(5) == b"\x05"
    assert codec.encode_length(200) == b"\x81\xc8"
    assert codec.encode_length(300) == b"\x82\x01\x2c"
    assert codec.encode_length(70000) == b"\x83\x01\x11\x70"
    assert codec.encode_length(1 << 24) == b"\x84\x01\x00\x00\x00"
