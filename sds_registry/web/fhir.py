"""SDS FHIR R4 API routes: /Device, /Endpoint, /healthcheck(/deep), and the FHIR 404/405 answers.

Flask glue only: read the request (correlation id, parameters, Accept/_format), call the directory's
indexed lookups, hand the rows to the pure renderer, and write the national API's headers. The order of
checks is the national backend's: X-Correlation-Id, then parameters, then Accept.

Served under ``/spine-directory/FHIR/R4`` and, when SDS_FHIR_BASE is set, under that base as well
(``SDS_FHIR_BASE=/`` serves ``/Device`` and ``/Endpoint`` at the root, for clients configured with a
bare base URL such as the MHS adaptor's WireMock layout; ``SDS_FHIR_BASE=/spine-directory`` serves
``/spine-directory/Device``, the gpc-consumer mock's layout).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, Request, Response, current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_accept_header

from sds_registry.config import Settings
from sds_registry.db import unavailable
from sds_registry.errors import ConfigError
from sds_registry.fhir import json_text, render, render_json, render_xml, search
from sds_registry.services import directory
from sds_registry.web import context, health
from sds_registry.web.negotiation import accepts_gzip

log = logging.getLogger(__name__)

STANDARD_BASE = "/spine-directory/FHIR/R4"
FHIR_JSON = "application/fhir+json"
JSON = "application/json"
FHIR_XML = "application/fhir+xml"
CORRELATION_ID = "X-Correlation-ID"
#: Bodies estimated above this many bytes are streamed (chunked), entry by entry.
STREAM_MIN_BYTES = 64 * 1024
_DEVICE_BASE_BYTES, _DEVICE_BYTES_PER_INTERACTION, _ENDPOINT_BYTES = 1200, 370, 2600


def blueprint(settings: Settings) -> Blueprint:
    """Routes at the standard base and at SDS_FHIR_BASE; health checks at / and under each base. A new
    Blueprint for each app: its routes depend on the app's settings."""
    bp = Blueprint("fhir", __name__)
    routes: list[tuple[str, str, Any]] = []
    for base in bases(settings.fhir_base):
        suffix = base.replace("/", "_") or "_root"
        routes += [(f"{base}/Device", f"device{suffix}", device_search),
                   (f"{base}/Endpoint", f"endpoint{suffix}", endpoint_search),
                   (f"{base}/healthcheck", f"healthcheck{suffix}", healthcheck),
                   (f"{base}/healthcheck/deep", f"deep_healthcheck{suffix}", deep_healthcheck)]
    if "" not in bases(settings.fhir_base):
        routes += [("/healthcheck", "healthcheck", healthcheck), ("/healthcheck/deep", "deep_healthcheck",
                                                                  deep_healthcheck)]
    for rule, endpoint, view in routes:
        bp.add_url_rule(rule, endpoint=endpoint, view_func=view, methods=["GET"], provide_automatic_options=False)
    return bp


def bases(fhir_base: str) -> list[str]:
    """The standard base plus SDS_FHIR_BASE normalised ("/" -> "", "a/b/" -> "/a/b")."""
    found = [STANDARD_BASE]
    if fhir_base:
        extra = "/" + fhir_base.strip().strip("/") if fhir_base.strip().strip("/") else ""
        if any(c in extra for c in "<>?#% \t") or "//" in extra:
            raise ConfigError(f"SDS_FHIR_BASE: not a URL path: {fhir_base!r}")
        if extra not in found:
            found.append(extra)
    return found


# ---- Correlation id, content negotiation, errors ----------------------------------------------------------


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # version and variant bits
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


#: Random bytes for ids, per thread, taken from os.urandom 4 KB at a time: each os.urandom call lets go of the
#: GIL, and under gunicorn's threads every such release costs a thread switch (a Device answer needs three ids).
_random = threading.local()
_RANDOM_BATCH = 4096
os.register_at_fork(after_in_child=_random.__dict__.clear)  # a forked child must not repeat its parent's ids


def _random_int128() -> int:
    pool: bytes | None = getattr(_random, "pool", None)
    at: int = getattr(_random, "at", _RANDOM_BATCH)
    if pool is None or at >= _RANDOM_BATCH:
        pool, at = os.urandom(_RANDOM_BATCH), 0
        _random.pool = pool
    _random.at = at + 16
    return int.from_bytes(pool[at:at + 16])


def new_correlation_id() -> str:
    """A random UUID as ``str(uuid.uuid4()).upper()`` writes it, without building a UUID object (a request
    makes three of them)."""
    text = f"{(_random_int128() & _UUID4_CLEAR) | _UUID4_SET:032X}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _correlation_id(environ: dict[str, Any]) -> tuple[str, str | None]:
    """(the id to echo, the 400 message if the client's X-Correlation-Id is not a UUID)."""
    # request.headers.get, without the KeyError EnvironHeaders raises for a missing header
    given = environ.get("HTTP_X_CORRELATION_ID")
    if not given:
        return new_correlation_id(), None
    if not search.valid_correlation_id(given):
        return new_correlation_id(), search.invalid_correlation_id().message
    return given, None


_FORMATS = {
    "json": FHIR_JSON, FHIR_JSON: FHIR_JSON, JSON: JSON,
    "xml": FHIR_XML, FHIR_XML: FHIR_XML, "application/xml": FHIR_XML, "text/xml": FHIR_XML,
}


def negotiate(accept: str | None, formats: list[str]) -> str | None:
    """The response type, or None (406). National rule: ``*/*`` or fhir+json -> fhir+json, else json, else
    406; a list is comma-separated and case-insensitive (media-type parameters are ignored, q=0 drops an
    item). Additions: FHIR XML when the first recognised type (in the client's order) is an XML one, and
    ``_format`` (last value wins) overriding Accept as FHIR R4 §3.1.0.1.10 says. Accept is read with werkzeug's
    parser, which orders items by preference: the client's order is taken back from each item's position."""
    if formats:
        return _FORMATS.get(formats[-1].strip().lower().replace(" ", "+"))
    header = (FHIR_JSON if accept is None else accept).lower()
    types = {value.partition(";")[0].strip() for value, quality in parse_accept_header(header) if quality > 0}
    recognised = [t for t in types if t in ("*/*", FHIR_JSON, JSON, FHIR_XML, "application/xml")]
    if recognised and min(recognised, key=lambda t: _position(header, t)) in (FHIR_XML, "application/xml"):
        return FHIR_XML
    if "*/*" in types or FHIR_JSON in types:
        return FHIR_JSON
    if JSON in types:
        return JSON
    return None


def _position(header: str, media_type: str) -> int:
    """Where ``media_type`` first stands as a list item of ``header`` (for the client's order)."""
    found = re.search(rf"(?:^|,)\s*{re.escape(media_type)}\s*(?:[;,]|$)", header)
    return found.start() if found else len(header)


def outcome_response(status: int, correlation_id: str, message: str | None = None) -> Response:
    """The national OperationOutcome (indent 4, always application/fhir+json) with X-Correlation-ID."""
    body = json_text.dumps(render.operation_outcome(status, correlation_id, message), indent=4)
    response = Response(body, status=status, mimetype=FHIR_JSON)
    response.headers[CORRELATION_ID] = correlation_id
    if status == 405:
        response.headers["Allow"] = "GET"
    return response


def http_error_response(exc: HTTPException) -> Any:
    """App-level handler for paths outside /api: unknown path -> 404, wrong method -> 405, as national."""
    correlation_id, _ = _correlation_id(request.environ)
    status = exc.code or 500
    if status in (404, 405):
        return outcome_response(status, correlation_id)
    if status >= 500:
        original = getattr(exc, "original_exception", None)
        message = type(original).__name__ if original is not None else exc.name
        return outcome_response(status, correlation_id, message)
    return outcome_response(status, correlation_id, exc.description or exc.name)


def lookup_failed(exc: Exception, what: str, correlation_id: str | None = None) -> Response:
    """A database that cannot be used: 503 (Retry-After: 1; 507 when full) and one log line; anything else:
    logged with its traceback, 500 (as the national API answers any lookup failure)."""
    correlation_id = correlation_id or _correlation_id(request.environ)[0]
    failure = unavailable(exc)
    if failure is None:
        log.exception("%s lookup failed", what)
        return outcome_response(500, correlation_id, type(exc).__name__)
    log.warning("%s lookup failed: %s (%s)", what, failure, type(exc).__name__)
    response = outcome_response(507 if failure.full else 503, correlation_id, str(failure))
    if not failure.full:
        response.headers["Retry-After"] = "1"
    return response


# ---- Searches -----------------------------------------------------------------------------------------------


def _only_bar_escapes(text: str) -> bool:
    """True when ``text`` is ASCII and its only escapes are %7C ('|', which every search value has), so that
    unquoting it is replacing those: the common case, done here without urllib's general decoder."""
    return text.isascii() and "%" not in text.replace("%7C", "").replace("%7c", "")


def _unbar(text: str) -> str:
    return text.replace("%7C", "|").replace("%7c", "|")


def _urls(req: Request) -> tuple[str, str]:
    """(search URL without query, the unquoted full request URL) as the national backend writes them."""
    base_url = f"{req.scheme}://{req.host}{req.root_path}{req.path}"
    query = req.query_string.decode("utf-8", "replace")
    if not query:
        return base_url, base_url
    return base_url, f"{base_url}?{_unbar(query) if _only_bar_escapes(query) else unquote(query)}"


def _params(req: Request) -> list[tuple[str, str]]:
    """The query parameters in request order (``request.args`` groups them by name; the parsers group them
    themselves). A query without "+" whose only escapes are %7C is split here, as parse_qsl would."""
    query = req.environ.get("QUERY_STRING", "")
    if "+" not in query and _only_bar_escapes(query):
        return [(name, value) for name, _, value in (field.partition("=") for field in _unbar(query).split("&")
                                                     if field)]
    return list(req.args.items(multi=True))


#: negotiate's answers for an Accept header without _format (a pure function of the header; bounded).
_NEGOTIATED: dict[str | None, str | None] = {}


def _content_type(accept: str | None, params: list[tuple[str, str]]) -> str | None:
    formats = search.format_values(params)
    if formats:
        return negotiate(accept, formats)
    try:
        return _NEGOTIATED[accept]
    except KeyError:
        content_type = negotiate(accept, formats)
        if len(_NEGOTIATED) < 256:
            _NEGOTIATED[accept] = content_type
        return content_type


def _prologue(parse: Any) -> tuple[str, Any, str] | Response:
    """Method, correlation id, parameters, content type: an error Response or (id, query, content type)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one context lookup, not one a read
    environ = req.environ
    correlation_id, bad_id = _correlation_id(environ)
    if req.method != "GET":
        return outcome_response(405, correlation_id)
    if bad_id is not None:
        return outcome_response(400, correlation_id, bad_id)
    params = _params(req)
    try:
        query = parse(params)
    except search.SearchError as exc:
        return outcome_response(400, correlation_id, exc.message)
    content_type = _content_type(environ.get("HTTP_ACCEPT"), params)
    if content_type is None:
        return outcome_response(406, correlation_id)
    return correlation_id, query, content_type


def device_search() -> Response:
    prologue = _prologue(search.parse_device)
    if isinstance(prologue, Response):
        return prologue
    correlation_id, query, content_type = prologue
    try:
        with context.read_connection() as reader:
            records = directory.find_accredited_system_views(
                reader, ods_code=query.ods_code, interaction_id=query.interaction_id,
                party_key=query.party_key, manufacturer_org=query.manufacturer_org)
    except Exception as exc:  # noqa: BLE001 - the national API answers any lookup failure with a 500 outcome
        return lookup_failed(exc, "Device", correlation_id)
    estimate = sum(_DEVICE_BASE_BYTES + _DEVICE_BYTES_PER_INTERACTION * len(r.interactions) for r in records)
    if content_type != FHIR_XML and estimate < STREAM_MIN_BYTES:
        entries = []
        for record in records:
            resource_id = new_correlation_id()
            entries.append((resource_id, render_json.device(record, resource_id)))
        return _json_response(correlation_id, content_type, entries)
    resources = (render.device(record, new_correlation_id()) for record in records)
    return _bundle_response(correlation_id, content_type, len(records), resources, estimate)


def endpoint_search() -> Response:
    prologue = _prologue(search.parse_endpoint)
    if isinstance(prologue, Response):
        return prologue
    correlation_id, query, content_type = prologue
    try:
        with context.read_connection() as reader:
            records = directory.find_mhs_views(reader, ods_code=query.ods_code,
                                               interaction_id=query.interaction_id, party_key=query.party_key)
            addresses = _intermediary_addresses(reader, records)
    except Exception as exc:  # noqa: BLE001
        return lookup_failed(exc, "Endpoint", correlation_id)
    # At most one Endpoint per endpoint URL (one for a record without any): below the streaming size for sure?
    most = sum(len(record.endpoints) or 1 for record in records)
    if content_type != FHIR_XML and _ENDPOINT_BYTES * most < STREAM_MIN_BYTES:
        entries = [entry for record, address in zip(records, addresses, strict=True)
                   for entry in render_json.endpoints(record, new_correlation_id, address)]
        return _json_response(correlation_id, content_type, entries)
    resources = [resource for record, address in zip(records, addresses, strict=True)
                 for resource in render.endpoints(record, new_correlation_id, address)]
    return _bundle_response(correlation_id, content_type, len(resources), iter(resources),
                            _ENDPOINT_BYTES * len(resources))


def _intermediary_addresses(reader: directory.Reader, records: list[directory.MhsView]) -> list[str | None]:
    """Forward reliable/express interactions answer with the Spine intermediary's address (reference §1.7).

    The intermediary is the MHS record of SDS_SPINE_CORE_ODS_CODE for the tms Reliable/ExpressIntermediary
    interaction. Where the national backend fails (500) when that record is missing or ambiguous, we
    keep the registered address and log a warning.
    """
    found: dict[str, str | None] = {}
    out: list[str | None] = []
    spine_core: str = current_app.extensions["sds"]["settings"].spine_core_ods_code
    for record in records:
        intermediary = search.forward_intermediary(record.interaction_id)
        if intermediary is None:
            out.append(None)
            continue
        if intermediary not in found:
            rows = directory.find_mhs_views(reader, ods_code=spine_core, interaction_id=intermediary)
            urls = [url for row in rows for url in row.endpoints]
            if len(rows) != 1 or len(urls) != 1:
                log.warning("expected one %s record with one endpoint for %s, found %d records and %d endpoints",
                            intermediary, spine_core, len(rows), len(urls))
            found[intermediary] = urls[0] if urls else None
        out.append(found[intermediary])
    return out


def _json_response(correlation_id: str, content_type: str, entries: list[tuple[str, str]]) -> Response:
    """The usual answer: a JSON Bundle held whole, written by render_json from (resource id, text) entries."""
    base_url, self_url = _urls(request._get_current_object())  # type: ignore[attr-defined]
    response = Response(render_json.bundle(new_correlation_id(), self_url, base_url, entries), mimetype=content_type)
    response.headers[CORRELATION_ID] = correlation_id
    return response


def _bundle_response(correlation_id: str, content_type: str, total: int, resources: Iterable[render.Resource],
                     estimate: int) -> Response:
    base_url, self_url = _urls(request._get_current_object())  # type: ignore[attr-defined]
    head = render.bundle_head(new_correlation_id(), total, self_url)
    if content_type == FHIR_XML:
        body = render_xml.bundle(head, base_url, resources)
        response = Response(body, mimetype=FHIR_XML)
    elif estimate >= STREAM_MIN_BYTES:
        chunks = json_text.iter_bundle(head, base_url, resources)
        response = Response(_streamed(chunks, accepts_gzip()), mimetype=content_type)
        if accepts_gzip():
            response.headers["Content-Encoding"] = "gzip"
    else:
        head["entry"] = [render.entry(base_url, r) for r in resources]
        response = Response(json_text.dumps(head), mimetype=content_type)
    response.headers[CORRELATION_ID] = correlation_id
    return response


def _streamed(chunks: Iterator[str], gzip: bool) -> Iterator[bytes]:
    """Encode (and gzip, when asked: web.app compresses only bodies it holds whole) as the chunks come."""
    if not gzip:
        for chunk in chunks:
            yield chunk.encode("utf-8")
        return
    compressor = zlib.compressobj(5, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        data = compressor.compress(chunk.encode("utf-8"))
        if data:
            yield data
    yield compressor.flush()


# ---- Health checks ------------------------------------------------------------------------------------------


def healthcheck() -> Response:
    """Empty 200, as the national backend's /healthcheck."""
    return Response(b"", status=200)


def deep_healthcheck() -> Response:
    """A real indexed lookup against the database (the national JSON shape with ``database`` for ``ldap``), then
    a cheap probe of each other facade the settings turn on (``web.health``); 503 when any fails."""
    status, output = "pass", ""
    try:
        with context.read_connection() as reader:
            directory.find_mhs_views(reader, ods_code="TEST", interaction_id="TEST", party_key="TEST")
    except Exception as exc:  # noqa: BLE001 - any failure is a failed health check
        log.exception("deep health check failed")
        status, output = "fail", type(exc).__name__
    dialect = context.engine().dialect.name
    details: dict[str, Any] = {"database": {"status": status, "links": {"database": dialect}, "output": output}}
    details.update(health.facades(context.settings()))
    if any(d["status"] != "pass" for d in details.values()):
        status = "fail"
    body = {"status": status, "details": details}
    return Response(json_text.dumps(body), status=200 if status == "pass" else 503, mimetype=JSON)
