"""Configuration: defaults, then SDS_* environment, then explicit overrides. The only reader of os.environ."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sds_registry.errors import ConfigError

#: Development-only default: a SQLite file under ./instance/. Use PostgreSQL in real deployments.
DEFAULT_DATABASE_URL = "sqlite:///" + str(Path("instance") / "sds.sqlite3")


@dataclass(frozen=True)
class Settings:
    """Every setting, named after its SDS_* variable (lower case, without the prefix)."""

    database_url: str = DEFAULT_DATABASE_URL
    #: host:port for each facade; the empty string turns that facade off.
    http_bind: str = "127.0.0.1:8080"
    ldap_bind: str = "127.0.0.1:1389"
    ldaps_bind: str = ""
    ssp_bind: str = "127.0.0.1:8443"
    http_workers: int = 2
    http_threads: int = 4
    ldap_workers: int = 1
    #: Base path of the SDS FHIR API besides /spine-directory/FHIR/R4 ("" = only the standard one).
    fhir_base: str = ""
    #: The Spine core organisation whose MHS records hold the forward reliable/express intermediary addresses
    #: (the national backend's SDS_SPINE_CORE_ODS_CODE, same name and default).
    spine_core_ods_code: str = "YES"
    # TLS for LDAPS/StartTLS.
    ldap_tls_cert: str = ""
    ldap_tls_key: str = ""
    ldap_tls_client_ca: str = ""
    #: Optional simple-bind account ("" = any simple bind is accepted as anonymous read access).
    ldap_bind_dn: str = ""
    ldap_bind_password: str = ""
    #: Bind password for ``sds mirror --bind-dn`` (or --password-file); never taken on the command line.
    mirror_password: str = ""
    ldap_max_message_bytes: int = 1024 * 1024
    ldap_idle_timeout: float = 300.0
    ldap_max_connections: int = 1024
    ldap_size_limit: int = 0  #: server maximum entries per search; 0 = unlimited, as slapd
    ldap_time_limit: int = 60  #: server maximum seconds per search
    #: Bytes of search answers each LDAP serving process keeps (dropped on any committed write); 0 = none.
    ldap_cache_bytes: int = 32 * 1024 * 1024
    # SSP emulator.
    ssp_tls_cert: str = ""
    ssp_tls_key: str = ""
    ssp_tls_client_ca: str = ""
    ssp_provider_timeout: float = 30.0
    ssp_provider_ca: str = ""  #: CA bundle used to verify providers ("" = system default)
    ssp_client_cert: str = ""  #: the SSP's own client certificate towards providers
    ssp_client_key: str = ""
    ssp_jwt_max_future_seconds: int = 300
    #: Provider connection overrides, like curl --connect-to: "host:port:addr:port2,..." (tests, local stubs);
    #: TLS SNI and certificate checks still use the registered host name.
    ssp_connect_to: str = ""
    ssp_workers: int = 2  #: SSP serving processes (one event loop each)
    ssp_threads: int = 4  #: threads per SSP process for registry lookups on a networked database
    ssp_provider_pool_size: int = 16  #: idle keep-alive connections kept per provider, per SSP process
    #: Seconds the SSP keeps the registry's facts for one (sender, receiver, interaction, CN); 0 = every request.
    ssp_cache_seconds: float = 1.0
    ssp_audit_batch: int = 200  #: decisions written per INSERT by the audit writer
    log_level: str = "INFO"
    #: Folder for the worker processes' Prometheus samples under `sds serve` (PROMETHEUS_MULTIPROC_DIR); empty
    #: means a fresh temporary folder per run, removed on exit. A set folder is emptied at start and kept.
    metrics_dir: str = ""
    log_format: str = "text"  #: "text" lines or "json" objects (one per line), on stderr
    #: The web pages at / (search, organisations, systems, interactions, SSP activity, registration forms).
    web: bool = False
    #: Key signing the web pages' session cookie and CSRF tokens; "" = a random key made when the settings are first
    #: loaded with SDS_WEB on, shared with every process started afterwards (see _web_secret_key).
    web_secret_key: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


_ENV_PREFIX = "SDS_"


def _coerce(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{_ENV_PREFIX}{name.upper()}: expected a boolean, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{_ENV_PREFIX}{name.upper()}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{_ENV_PREFIX}{name.upper()}: expected a number, got {raw!r}") from None
    return raw


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from defaults, the SDS_* environment, then overrides; fail fast on bad values."""
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        key = _ENV_PREFIX + f.name.upper()
        if key in env:
            values[f.name] = _coerce(f.name, env[key], getattr(base, f.name))
    settings = replace(base, **values)
    if overrides:
        unknown = set(overrides) - {f.name for f in fields(Settings)}
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        settings = replace(settings, **overrides)
    for bind_name in ("http_bind", "ldap_bind", "ldaps_bind", "ssp_bind"):
        bind = getattr(settings, bind_name)
        if bind:
            parse_bind(bind, f"{_ENV_PREFIX}{bind_name.upper()}")
    level = settings.log_level.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{_ENV_PREFIX}LOG_LEVEL: {settings.log_level!r} is not a log level; "
                          f"use one of {', '.join(LOG_LEVELS)}")
    fmt = settings.log_format.strip().lower()
    if fmt not in ("text", "json"):
        raise ConfigError(f"{_ENV_PREFIX}LOG_FORMAT: {settings.log_format!r} is not a log format; use text or json")
    settings = replace(settings, log_level=level, log_format=fmt)
    if settings.web_secret_key and len(settings.web_secret_key) < WEB_SECRET_KEY_MIN:
        raise ConfigError(f"{_ENV_PREFIX}WEB_SECRET_KEY: too short ({len(settings.web_secret_key)} characters); use "
                          f"at least {WEB_SECRET_KEY_MIN}, e.g. the output of: python3 -c "
                          "'import secrets; print(secrets.token_urlsafe(32))'")
    _check_sqlite_folder(settings.database_url)
    if settings.web and not settings.web_secret_key:
        settings = replace(settings, web_secret_key=_web_secret_key(environ is None))
    return settings


def _web_secret_key(share: bool) -> str:
    """A random key for the web pages' cookies when SDS_WEB_SECRET_KEY is not set. ``share`` (settings read from
    this process's environment): the key is put into that environment, so the processes started from here on
    (``sds serve``'s facades, gunicorn's workers) sign with the same key; a restart makes a new one, ending every
    web session. Under another WSGI server's separate workers, set SDS_WEB_SECRET_KEY."""
    key = secrets.token_urlsafe(32)
    if share:
        os.environ[_ENV_PREFIX + "WEB_SECRET_KEY"] = key
    return key


#: The shortest SDS_WEB_SECRET_KEY accepted (a guessable key lets anyone forge a session cookie).
WEB_SECRET_KEY_MIN = 32
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Variables with the SDS_ prefix that are not settings: the test suite's own (documented in the README).
_NOT_SETTINGS_PREFIX = "SDS_TEST_"


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, for a child process."""
    return {**os.environ, **extra}


def known_variables() -> list[str]:
    return [_ENV_PREFIX + f.name.upper() for f in fields(Settings) if f.name != "extra"]


def unknown_variable_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per SDS_* variable that is no setting (a typo, most likely), naming the closest known one."""
    env = os.environ if environ is None else environ
    known = known_variables()
    out = []
    for name in sorted(env):
        if not name.startswith(_ENV_PREFIX) or name in known or name.startswith(_NOT_SETTINGS_PREFIX):
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        out.append(f"{name} is not a setting and is ignored{hint}")
    return out


def _check_sqlite_folder(url: str) -> None:
    """A SQLite file URL must name an existing folder (a mistyped path would otherwise get a new, empty database
    there); only the development default's ./instance/ is created when missing."""
    if url == DEFAULT_DATABASE_URL or not url.startswith("sqlite"):
        return
    _, sep, path = url.partition(":///")
    path = path.split("?", 1)[0]
    if not sep or not path or path == ":memory:" or path.startswith("file:"):
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"{_ENV_PREFIX}DATABASE_URL: the folder {str(folder)!r} of the SQLite database does not "
                          f"exist (create it, or correct the path in {url!r})")


def parse_bind(bind: str, label: str = "bind") -> tuple[str, int]:
    """Split "host:port" (or "[::1]:port"); raise ConfigError naming the setting when malformed."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{label}: expected host:port, got {bind!r}")
    return host.strip("[]"), int(port)
