"""The TLS server context for LDAPS and StartTLS, built from settings. No sockets here."""

from __future__ import annotations

import ssl

from sds_registry.config import Settings
from sds_registry.errors import ConfigError


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS 1.2+ with the configured certificate; client certificates required when a client CA is set.

    SDS uses TLS mutual authentication, so with ``ldap_tls_client_ca`` a client without a certificate
    signed by that CA fails the handshake. None when no certificate is configured (no LDAPS, no StartTLS).
    """
    if not settings.ldap_tls_cert:
        if settings.ldaps_bind:
            raise ConfigError("SDS_LDAPS_BIND needs SDS_LDAP_TLS_CERT (and SDS_LDAP_TLS_KEY)")
        if settings.ldap_tls_client_ca:
            raise ConfigError("SDS_LDAP_TLS_CLIENT_CA needs SDS_LDAP_TLS_CERT: client certificates need TLS")
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.ldap_tls_cert, settings.ldap_tls_key or None)
        if settings.ldap_tls_client_ca:
            ctx.load_verify_locations(cafile=settings.ldap_tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"LDAP TLS certificate, key or client CA cannot be loaded: {exc}") from exc
    return ctx
