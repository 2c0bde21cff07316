"""The proxy's pure helpers: the target URL from the request line, headers, --connect-to, settings checks."""

from __future__ import annotations

import logging

import pytest

from sds_registry.config import load_settings
from sds_registry.errors import ConfigError
from sds_registry.ssp.proxy import check_settings, parse_connect_to, request_headers, target_url


@pytest.mark.parametrize(("environ", "expected"), [
    ({"RAW_URI": "/https://p.test/A/STU3/1/gpconnect/metadata?a=%2F"},
     "https://p.test/A/STU3/1/gpconnect/metadata?a=%2F"),
    ({"RAW_URI": "/https%3A%2F%2Fp.test%2FA%2FSTU3%2F1%2Fgpconnect/metadata"},
     "https://p.test/A/STU3/1/gpconnect/metadata"),
    ({"PATH_INFO": "/https://p.test/x", "QUERY_STRING": "q=1"}, "https://p.test/x?q=1"),
    ({"PATH_INFO": "/"}, ""),
])
def test_target_url(environ: dict[str, str], expected: str) -> None:
    assert target_url(environ) == expected


def test_request_headers_restore_names() -> None:
    environ = {"HTTP_SSP_TRACEID": "t", "HTTP_SSP_INTERACTIONID": "i", "HTTP_X_CUSTOM_THING": "v",
               "CONTENT_TYPE": "application/fhir+json", "CONTENT_LENGTH": "", "wsgi.input": object()}
    assert request_headers(environ) == [("Ssp-TraceID", "t"), ("Ssp-InteractionID", "i"),
                                        ("X-Custom-Thing", "v"), ("Content-Type", "application/fhir+json")]


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
