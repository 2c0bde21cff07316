"""The /api error table: our error tree -> the SDS FHIR API's OperationOutcome shape (one issue per broken rule).

The national API's profile; the FHIR facade's coding system and Spine code/display pairs; ``expression``
names the field and ``diagnostics`` the rule. Every /api error answer is made by ``outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

from sds_registry.errors import (
    Conflict,
    Forbidden,
    InvalidIdentifier,
    Issue,
    NotFound,
    PreconditionRequired,
    RegistryError,
    StaleVersion,
    Unauthorized,
    Unavailable,
)
from sds_registry.fhir.render import SPINE_CODING_SYSTEM

#: The profile the national SDS FHIR API's specification names for its errors (spine-directory-service.yaml).
PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/Spine-OperationOutcome-1"
#: The coding system the FHIR facade answers with (the national SDS FHIR API's), so one client reads both.
SYSTEM = SPINE_CODING_SYSTEM


@dataclass(frozen=True)
class SpineCode:
    status: int
    issue_type: str
    code: str
    display: str


BAD_REQUEST = SpineCode(400, "invalid", "BAD_REQUEST", "Bad request")
INVALID_RESOURCE = SpineCode(422, "invalid", "INVALID_RESOURCE", "Invalid validation of resource")
INVALID_PARAMETER = SpineCode(422, "invalid", "INVALID_PARAMETER", "Invalid parameter")
NO_RECORD_FOUND = SpineCode(404, "not-found", "NO_RECORD_FOUND", "No record found")
ACCESS_DENIED = SpineCode(403, "forbidden", "ACCESS_DENIED", "Access has been denied to process this request")
AUTHOR_CREDENTIALS_ERROR = SpineCode(401, "security", "AUTHOR_CREDENTIALS_ERROR", "Author credentials error")
DUPLICATE_REJECTED = SpineCode(
    409, "duplicate", "DUPLICATE_REJECTED", "Create would lead to creation of a duplicate resource"
)
VERSION_CONFLICT = SpineCode(409, "conflict", "CONFLICTING_VALUES", "The resource has been changed since it was read")
PRECONDITION_REQUIRED = SpineCode(
    428, "required", "MISSING_OR_INVALID_HEADER", "There is a required header missing or invalid"
)
NOT_IMPLEMENTED = SpineCode(405, "not-supported", "NOT_IMPLEMENTED", "Not implemented")
INTERNAL = SpineCode(500, "exception", "INTERNAL_SERVER_ERROR", "Unexpected internal server error")
SERVICE_UNAVAILABLE = SpineCode(503, "transient", "SERVICE_UNAVAILABLE", "Service unavailable")
INSUFFICIENT_STORAGE = SpineCode(507, "exception", "INSUFFICIENT_STORAGE", "Insufficient storage")


def outcome(code: SpineCode, issues: list[Issue] | None = None, diagnostics: str | None = None) -> Response:
    """An OperationOutcome response: one issue per broken rule (field in ``expression``), or one general issue."""
    entries: list[dict[str, Any]] = []
    for issue in issues or []:  # a missing field or parameter is FHIR's "required", any other broken rule the code's
        entries.append(_issue(code, f"{issue.field}: {issue.message} (rule: {issue.rule})", issue.field,
                              "required" if issue.rule == "required" else None))
    if not entries:
        entries.append(_issue(code, diagnostics or code.display, None))
    body = {"resourceType": "OperationOutcome", "meta": {"profile": [PROFILE]}, "issue": entries}
    response = jsonify(body)
    response.status_code = code.status
    return response


def _issue(code: SpineCode, diagnostics: str, expression: str | None, issue_type: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": issue_type or code.issue_type,
        "details": {"coding": [{"system": SYSTEM, "code": code.code, "display": code.display}]},
        "diagnostics": diagnostics,
    }
    if expression is not None:
        issue["expression"] = [expression]
    return issue


class BadRequest(RegistryError):
    """Malformed input (not JSON, wrong header syntax): 400 BAD_REQUEST."""

    def __init__(self, message: str, field: str | None = None, rule: str = "malformed") -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


def registry_error_response(exc: RegistryError) -> Response:
    """The one mapping of the domain error tree for /api."""
    if isinstance(exc, InvalidIdentifier):
        return outcome(INVALID_RESOURCE, exc.issues)
    if isinstance(exc, BadRequest):
        issues = [Issue(exc.field, exc.rule, str(exc))] if exc.field else None
        return outcome(BAD_REQUEST, issues, str(exc))
    if isinstance(exc, NotFound):
        return outcome(NO_RECORD_FOUND, diagnostics=str(exc))
    if isinstance(exc, StaleVersion):
        return outcome(VERSION_CONFLICT, [Issue("If-Match", "version", str(exc))])
    if isinstance(exc, Conflict):
        return outcome(DUPLICATE_REJECTED, diagnostics=str(exc))
    if isinstance(exc, PreconditionRequired):
        return outcome(PRECONDITION_REQUIRED, [Issue("If-Match", "required", str(exc))])
    if isinstance(exc, Forbidden):
        return outcome(ACCESS_DENIED, diagnostics=str(exc))
    if isinstance(exc, Unauthorized):
        response = outcome(AUTHOR_CREDENTIALS_ERROR, diagnostics=str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="sds-registry"'
        return response
    if isinstance(exc, Unavailable):
        return unavailable_response(exc)
    return outcome(INTERNAL, diagnostics="unexpected error")


def unavailable_response(exc: Unavailable) -> Response:
    """503 (the database cannot be used now; Retry-After: 1) or 507 (no room for the write)."""
    if exc.full:
        return outcome(INSUFFICIENT_STORAGE, diagnostics=str(exc))
    response = outcome(SERVICE_UNAVAILABLE, diagnostics=str(exc))
    response.headers["Retry-After"] = "1"
    return response


def http_error_response(exc: HTTPException) -> Response:
    """Unmatched /api URLs (404), wrong methods (405) and other HTTP errors as OperationOutcomes."""
    status = exc.code or 500
    if status == 404:
        response = outcome(NO_RECORD_FOUND, diagnostics="no such resource in the /api registry")
    elif status == 405:
        response = outcome(NOT_IMPLEMENTED, diagnostics="method not allowed for this resource")
        allowed = exc.get_response().headers.get("Allow")
        if allowed:
            response.headers["Allow"] = allowed
    elif status == 400:
        response = outcome(BAD_REQUEST, diagnostics=exc.description or "malformed request")
    else:
        code = SpineCode(status, "processing", "BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR",
                         exc.name)
        response = outcome(code, diagnostics=exc.description or exc.name)
    return response
