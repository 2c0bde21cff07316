"""The proxy's pure helpers: the target URL from the request line, headers, --connect-to, settings checks."""

from __future__ import annotations

import logging

import pytest

from sds_registry.config import load_settings
from sds_registry.errors import ConfigError
from sds_registry.ssp.proxy import check_settings, forwarded_headers, parse_connect_to, target_url


@pytest.mark.parametrize(("request_target", "expected"), [
    ("/https://p.test/A/STU3/1/gpconnect/metadata?a=%2F", "https://p.test/A/STU3/1/gpconnect/metadata?a=%2F"),
    ("/https%3A%2F%2Fp.test%2FA%2FSTU3%2F1%2Fgpconnect/metadata", "https://p.test/A/STU3/1/gpconnect/metadata"),
    ("/", ""),
])
def test_target_url(request_target: str, expected: str) -> None:
    assert target_url(request_target) == expected


def test_forwarded_headers_keep_the_clients_spelling_and_order() -> None:
    headers = [("Host", "ssp.test:8443"), ("ssp-TraceID", "t"), ("Connection", "keep-alive"), ("X-Custom", "v"),
               ("Expect", "100-continue"), ("X-Forwarded-For", "10.0.0.9"), ("Transfer-Encoding", "chunked")]
    assert forwarded_headers(headers, netloc="p.test", client_ip="127.0.0.1", proto="https") == [
        ("Host", "p.test"), ("ssp-TraceID", "t"), ("X-Custom", "v"), ("X-Forwarded-For", "10.0.0.9, 127.0.0.1"),
        ("Forwarded", 'for=127.0.0.1;host="ssp.test:8443";proto=https')]
    assert forwarded_headers([], netloc="p.test", client_ip="::1", proto="http")[1] == (
        "Forwarded", 'for="[::1]";host="";proto=http')


def test_parse_connect_to() -> None:
    assert parse_connect_to("") == {}
    assert parse_connect_to("P.test:443:127.0.0.1:8443, q.test:443:10.0.0.2:443") == {
        ("p.test", 443): ("127.0.0.1", 8443), ("q.test", 443): ("10.0.0.2", 443)}


@pytest.mark.parametrize("bad", ["p.test:443:127.0.0.1", "p.test:x:127.0.0.1:1", ":443:a:1"])
def test_parse_connect_to_rejects(bad: str) -> None:
    with pytest.raises(ConfigError, match="SDS_SSP_CONNECT_TO"):
        parse_connect_to(bad)


def test_check_settings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "sds.ssp"):
        check_settings(load_settings(environ={}))
    assert "plain HTTP" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "sds.ssp"):
        check_settings(load_settings({"ssp_tls_cert": "c.pem", "ssp_tls_key": "k.pem"}, environ={}))
    assert "client certificate CNs are not checked" in caplog.text
    with pytest.raises(ConfigError, match="go together"):
        check_settings(load_settings({"ssp_tls_cert": "c.pem"}, environ={}))
    with pytest.raises(ConfigError, match="CLIENT_CA needs"):
        check_settings(load_settings({"ssp_tls_client_ca": "ca.pem"}, environ={}))


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1", "127.0.0.1"), ("https", "https"), ("[2001:db8::1]", '"[2001:db8::1]"'),
    ("ssp.test:8443", '"ssp.test:8443"'), ('a"b\\', '"a\\"b\\\\"'), ("", '""'),
])
def test_forwarded_values(value: str, expected: str) -> None:
    from sds_registry.ssp.proxy import _forwarded_value

    assert _forwarded_value(value) == expected
