"""Response checks shared by the FHIR tests: the national OpenAPI spec (openapi-core) and a FHIR model
library in strict mode (fhir.resources; R4B, whose Bundle/Device/Endpoint/OperationOutcome are R4's)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.functional.fhir.fixtures import NATIONAL

SPEC = NATIONAL / "specification" / "spine-directory-service.yaml"
SPEC_SERVER = "https://sandbox.api.service.nhs.uk"


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_file_path(
        str(SPEC), config=Config(extra_media_type_deserializers={"application/fhir+json": json.loads}))


def check_openapi(kind: str, status: int, body: bytes) -> None:
    """The response against the national spec. The spec only lists application/fhir+json, so a body sent
    as application/json (same bytes, other Content-Type by the Accept rule) is checked as that."""
    request = MockRequest(SPEC_SERVER, "get", f"/spine-directory/FHIR/R4/{kind}")
    openapi().validate_response(request, MockResponse(body, status_code=status,
                                                      content_type="application/fhir+json"))


def check_fhir(body: bytes | str) -> Any:
    """Strict parse: unknown elements, empty strings, wrong types and bad ids all fail."""
    value = json.loads(body)
    model = Bundle if value.get("resourceType") == "Bundle" else OperationOutcome
    return model.model_validate(value, strict=True)


def check_response(kind: str, response: Any) -> dict[str, Any]:
    body = response.get_data()
    check_openapi(kind, response.status_code, body)
    check_fhir(body)
    value: dict[str, Any] = json.loads(body)
    return value
