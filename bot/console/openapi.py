"""The OpenAPI 3.1 description of the console's JSON API, served at ``/api/openapi.json``,
written from the route table that registers the handlers and from the models that validate
and serialise what they take and give: what is described is what runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot.console.api_models import Error
from bot.console.endpoints import ID_PATTERN, Access, Endpoint, Route, Socket, narrow

Schema = dict[str, Any]

REF = "#/components/schemas/{model}"
ERROR = REF.format(model=Error.__name__)  # the one component every refusal points at

# What each refusal status means here; an operation lists those it can answer.
REFUSALS: dict[int, str] = {
    400: "the body or a parameter is not what this operation takes (the words name the field)",
    401: "not logged in, or the session expired",
    403: "not allowed: a one-time password not yet changed, a missing CSRF token, a page from"
    " another site, or the role",
    404: "no such object (handoff, canned reply) or no such path",
    409: "someone else changed it first (e.g. another agent claimed the conversation)",
    413: "the body is larger than 64 KiB",
    422: "refused as given (e.g. WeChat would not deliver this reply, an unmask reason is"
    " missing, the current password is wrong or the new one too short)",
    429: "too many attempts from this address: wait for Retry-After seconds",
    503: "a part of the server (the database) is unavailable: retry shortly",
}


def openapi_document(routes: Sequence[Route], server_url: str = "") -> dict[str, Any]:
    """The whole document; ``server_url`` is where the API is served (BILLBOT_PUBLIC_URL)."""
    refs, schemas = _schemas(routes)
    paths: dict[str, dict[str, Schema]] = {}
    for entry in routes:
        route = narrow(entry)
        operation = _socket(route, refs) if isinstance(route, Socket) else _operation(route, refs)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "billbot agent console API",
            "version": "1.1.0",
            "description": (
                "What the agent console does, for other tools too. Log in with POST /api/login;"
                " the session is an HttpOnly cookie (billbot_session) valid 12 hours. Every"
                " POST, PUT or DELETE except the login needs the X-CSRF-Token header carrying"
                " the csrf_token from the login or GET /api/me. Every refusal is"
                ' {"error": {"zh": …, "en": …, "key": …}} (key only when the case has a stable'
                " name). Personal data is masked unless an admin unmasks it with a reason,"
                " which is audited."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "billbot_session"}
            },
            "parameters": {
                "CsrfToken": {
                    "name": "X-CSRF-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "the csrf_token of this session",
                }
            },
        },
        "security": [{"session": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


Refs = dict[tuple[Any, JsonSchemaMode], Schema]  # (model, mode) → its $ref


def _schemas(routes: Sequence[Route]) -> tuple[Refs, dict[str, Schema]]:
    """Every model the routes name, as components; bodies as read, responses as written."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Error, "serialization")]
    for entry in routes:
        route = narrow(entry)
        if isinstance(route, Socket):
            wanted.append((route.frames, "serialization"))
            continue
        if route.reads_body:
            wanted.append((route.takes, "validation"))
        wanted.append((route.gives, "serialization"))
    refs, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    return dict(refs), top.get("$defs", {})


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _refused(status: int) -> Schema:
    answer = _json({"$ref": ERROR}, REFUSALS[status])
    if status == 429:
        answer["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}
        }
    return answer


def _summary(route: Route) -> str:
    zh, en = route.summary
    return f"{zh} / {en}"


def _refusals(route: Endpoint[Any, Any]) -> set[int]:
    statuses = {*route.refusals, 503}
    if route.access is not Access.PUBLIC:
        statuses |= {401, 403}
    if route.changes:
        statuses.add(403)  # a page from another site; without a session, the CSRF token too
    if route.reads_body:
        statuses |= {400, 413}
    if route.reads_query:
        statuses.add(400)
    if route.path_ids:
        statuses.add(404)
    if route.throttle is not None:
        statuses.add(429)
    return statuses


def _operation(route: Endpoint[Any, Any], refs: Refs) -> Schema:
    params: list[Schema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": 10**9 - 1},
            "description": f"an id ({ID_PATTERN})",
        }
        for name in route.path_ids
    ]
    if route.reads_query:
        properties = route.takes.model_json_schema()["properties"]
        for name, field in route.takes.model_fields.items():
            schema = {k: v for k, v in properties[name].items() if k not in ("title",)}
            description = schema.pop("description", "")
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": field.is_required(),
                    "schema": schema,
                    "description": description,
                }
            )
    if route.changes and route.access is not Access.PUBLIC:
        params.append({"$ref": "#/components/parameters/CsrfToken"})
    ok = "Created" if route.status == 201 else "OK"
    op: Schema = {
        "operationId": route.handler.__name__,
        "summary": _summary(route),
        "responses": {
            str(route.status): _json(refs[(route.gives, "serialization")], ok),
            **{str(status): _refused(status) for status in sorted(_refusals(route))},
        },
    }
    if route.access is Access.ADMIN:
        op["description"] = "管理员专用。/ Admins only."
    if params:
        op["parameters"] = params
    if route.reads_body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(route.takes, "validation")]}},
        }
    if route.access is Access.PUBLIC:
        op["security"] = []
    return op


def _socket(route: Socket, refs: Refs) -> Schema:
    return {
        "operationId": route.handler.__name__,
        "summary": _summary(route),
        "description": route.description,
        "responses": {
            "101": {"description": "Switching to the WebSocket protocol"},
            **{str(status): _refused(status) for status in (401, 403, 503)},
        },
        # not an OpenAPI notion: the shape of each text frame, both ways
        "x-frames": refs[(route.frames, "serialization")],
    }
