"""The OpenAPI document, corrected to say what the API really answers.

FastAPI documents a 422 ``HTTPValidationError`` on every operation with
parameters; this API answers bad parameters with a 400 problem and bad bodies
with a 422 problem (:mod:`node.api.guard`). The document is rewritten once, on
first request, to show problem+json instead, and the unused schemas are dropped.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from node.api.constants import PROBLEM_CONTENT_TYPE

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemModel"}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": _PROBLEM_REF}}}


def _fix_operation(method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    generated = responses.get("422", {})
    if "HTTPValidationError" in str(generated):
        del responses["422"]
    if operation.get("parameters"):
        responses.setdefault("400", _problem_response("Bad path or query parameter"))
    if method == "post":
        responses.setdefault("422", _problem_response("Body does not match the schema, or rejected"))
    for status, response in responses.items():
        content = response.get("content", {})
        if status[0] in "45" and PROBLEM_CONTENT_TYPE in content:
            content[PROBLEM_CONTENT_TYPE] = {"schema": _PROBLEM_REF}
            content.pop("application/json", None)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with problem+json error responses."""
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            _fix_operation(method, operation)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if "ProblemModel" not in schemas:
        from node.api.models import ProblemModel

        schemas["ProblemModel"] = ProblemModel.model_json_schema(ref_template="#/components/schemas/{model}")
    return spec


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` (computed once per app) at the app's OpenAPI URL."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "spec" not in cache:
            cache["spec"] = build_openapi(app)
        app.openapi_schema = cache["spec"]
        return cache["spec"]  # type: ignore[no-any-return]

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["build_openapi", "install_openapi"]
