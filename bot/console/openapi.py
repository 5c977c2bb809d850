"""The OpenAPI 3.1 description of the console's JSON API, served at ``/api/openapi.json``.

Written by hand so it says what the API promises in words; a test checks that every route
under /api is described here, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


_DATETIME: Schema = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "description": "Every refusal: plain words in Chinese and English.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["zh", "en"],
                "properties": {"zh": {"type": "string"}, "en": {"type": "string"}},
            }
        },
    },
    "Agent": {
        "type": "object",
        "required": ["id", "name", "role", "must_change_password"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "admin"]},
            "must_change_password": {"type": "boolean"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["agent", "csrf_token"],
        "properties": {
            "agent": _ref("Agent"),
            "csrf_token": {
                "type": "string",
                "description": "Send it back as the X-CSRF-Token header on every change.",
            },
        },
    },
    "TranscriptLine": {
        "type": "object",
        "required": ["at", "sender", "text"],
        "properties": {
            "at": _DATETIME,
            "sender": {
                "type": "string",
                "description": "customer | bot | agent:<name> | note:<name>",
            },
            "text": {"type": "string"},
        },
    },
    "QueueItem": {
        "type": "object",
        "required": [
            "id",
            "ref",
            "status",
            "reason",
            "priority",
            "created_at",
            "waiting_seconds",
            "order",
            "amount_confirmed",
            "failures",
            "customer",
            "channel",
            "claimed_by",
            "dropped_by",
            "last_messages",
        ],
        "properties": {
            "id": {"type": "integer"},
            "ref": {"type": "string", "description": "the reference the customer quotes"},
            "status": {
                "type": "string",
                "description": "waiting | claimed | waiting_customer | resolved | returned"
                " | cancelled | expired",
            },
            "reason": {
                "type": "string",
                "description": "asked | verify_failed | order_not_found | not_understood | …",
            },
            "priority": {"type": "integer"},
            "created_at": _DATETIME,
            "waiting_seconds": {"type": "integer"},
            "order": _nullable({"type": "string", "description": "masked, e.g. ****3456"}),
            "amount_confirmed": {"type": "boolean"},
            "failures": {"type": "integer"},
            "customer": {"type": "string", "description": "masked OpenID"},
            "channel": {"type": "string"},
            "claimed_by": _nullable({"type": "string"}),
            "dropped_by": _nullable(
                {"type": "string", "description": "the agent whose lease lapsed"}
            ),
            "last_messages": {"type": "array", "items": _ref("TranscriptLine")},
        },
    },
    "ConversationView": {
        "type": "object",
        "required": ["item", "transcript", "masked", "window_open_until", "replies_left"],
        "properties": {
            "item": _ref("QueueItem"),
            "transcript": {"type": "array", "items": _ref("TranscriptLine")},
            "masked": {"type": "boolean"},
            "window_open_until": _nullable(
                {**_DATETIME, "description": "end of WeChat's 48 h reply window"}
            ),
            "replies_left": {
                "type": "integer",
                "description": "of the 5 replies WeChat allows per customer message",
            },
        },
    },
    "TodayFigures": {
        "type": "object",
        "required": [
            "waiting",
            "handled_today",
            "avg_wait_seconds",
            "avg_first_response_seconds",
            "avg_resolution_seconds",
        ],
        "properties": {
            "waiting": {"type": "integer"},
            "handled_today": {"type": "integer"},
            "avg_wait_seconds": _nullable({"type": "number"}),
            "avg_first_response_seconds": _nullable({"type": "number"}),
            "avg_resolution_seconds": _nullable({"type": "number"}),
        },
    },
    "Canned": {
        "type": "object",
        "required": ["id", "title", "text"],
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "text": {"type": "string"},
        },
    },
}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _wrapped(key: str, schema: Schema) -> Schema:
    return {"type": "object", "required": [key], "properties": {key: schema}}


def _body(properties: dict[str, Schema]) -> Schema:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": list(properties),
                    "properties": properties,
                }
            }
        },
    }


_ERRORS = {
    "400": "the body is not a JSON object with the fields named",
    "401": "not logged in, or the session expired",
    "403": "not allowed: a one-time password not yet changed, a missing CSRF token, or the role",
    "404": "no such handoff or canned reply",
    "409": "someone else changed it first (e.g. another agent claimed the conversation)",
    "422": "refused as given (e.g. WeChat would not deliver this reply, an unmask reason is"
    " missing, the current password is wrong or the new one too short)",
    "429": "too many wrong passwords: the login is locked for a while",
}


def _op(
    summary: str,
    ok: Schema,
    *,
    body: Schema | None = None,
    errors: tuple[str, ...] = ("401", "403"),
    public: bool = False,
    changes: bool = False,
    path_id: bool = False,
    parameters: list[Schema] | None = None,
    status: str = "200",
) -> Schema:
    op: Schema = {
        "summary": summary,
        "responses": {
            status: ok,
            **{code: _json(_ref("Error"), _ERRORS[code]) for code in errors},
        },
    }
    params = list(parameters or [])
    if path_id:
        params.insert(
            0, {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
        )
    if changes and not public:
        params.append({"$ref": "#/components/parameters/CsrfToken"})
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


_TEXT = {"type": "string"}
_ITEM = _json(_wrapped("item", _ref("QueueItem")))
_ITEMS = _json(_wrapped("items", {"type": "array", "items": _ref("QueueItem")}))
_HANDOFF_ERRORS = ("401", "403", "404", "409")


def _paths() -> dict[str, Schema]:
    return {
        "/api/openapi.json": {
            "get": _op("This document", _json({"type": "object"}), errors=(), public=True)
        },
        "/api/login": {
            "post": _op(
                "Log in: sets the session cookie and returns the CSRF token",
                _json(_ref("Session")),
                body=_body({"name": _TEXT, "password": _TEXT}),
                errors=("400", "401", "429"),
                public=True,
                changes=True,
            )
        },
        "/api/logout": {
            "post": _op(
                "Log out: ends this session",
                _json({"type": "object", "properties": {"ok": {"type": "boolean"}}}),
                changes=True,
            )
        },
        "/api/me": {"get": _op("Who is logged in, and the CSRF token", _json(_ref("Session")))},
        "/api/password": {
            "post": _op(
                "Change the password (at least 10 characters); ends the agent's other sessions",
                _json(_ref("Session")),
                body=_body({"old_password": _TEXT, "new_password": _TEXT}),
                errors=("400", "401", "403", "422", "429"),
                changes=True,
            )
        },
        "/api/queue": {"get": _op("Waiting handoffs: priority first, then the oldest", _ITEMS)},
        "/api/mine": {
            "get": _op(
                "Handoffs claimed by or parked for this agent (admin: every claimed one)",
                _ITEMS,
            )
        },
        "/api/handoffs/claim-next": {
            "post": _op(
                "Claim the highest-priority, oldest waiting handoff (item is null if none)",
                _json(_wrapped("item", _nullable(_ref("QueueItem")))),
                errors=_HANDOFF_ERRORS,
                changes=True,
            )
        },
        "/api/handoffs/{id}": {
            "get": _op(
                "The whole conversation, masked; an admin may unmask with a stated reason"
                " (written to the audit log)",
                _json(_ref("ConversationView")),
                errors=("401", "403", "404", "422"),
                path_id=True,
                parameters=[
                    {
                        "name": "unmask_reason",
                        "in": "query",
                        "required": False,
                        "schema": _TEXT,
                        "description": "admin only: why personal data must be seen in clear",
                    }
                ],
            )
        },
        "/api/handoffs/{id}/claim": {
            "post": _op(
                "Claim this handoff; 409 if another agent has it",
                _ITEM,
                errors=_HANDOFF_ERRORS,
                changes=True,
                path_id=True,
            )
        },
        "/api/handoffs/{id}/reply": {
            "post": _op(
                "Send a reply to the customer through WeChat",
                _json(_ref("ConversationView")),
                body=_body({"text": _TEXT}),
                errors=(*_HANDOFF_ERRORS, "400", "422"),
                changes=True,
                path_id=True,
            )
        },
        "/api/handoffs/{id}/note": {
            "post": _op(
                "Add a private note (never sent to the customer)",
                _json(_ref("ConversationView")),
                body=_body({"text": _TEXT}),
                errors=(*_HANDOFF_ERRORS, "400", "422"),
                changes=True,
                path_id=True,
            )
        },
        "/api/handoffs/{id}/transfer": {
            "post": _op(
                "Pass the conversation to another agent",
                _ITEM,
                body=_body({"agent_id": {"type": "integer"}}),
                errors=(*_HANDOFF_ERRORS, "400", "422"),
                changes=True,
                path_id=True,
            )
        },
        "/api/handoffs/{id}/handback": {
            "post": _op(
                "Hand back to the bot: the customer continues where the bot left off",
                _ITEM,
                errors=_HANDOFF_ERRORS,
                changes=True,
                path_id=True,
            )
        },
        "/api/handoffs/{id}/resolve": {
            "post": _op(
                "Resolve: the customer's next message starts afresh with the bot",
                _ITEM,
                errors=_HANDOFF_ERRORS,
                changes=True,
                path_id=True,
            )
        },
        "/api/agents": {
            "get": _op(
                "Every console login (for transfers)",
                _json(_wrapped("agents", {"type": "array", "items": _ref("Agent")})),
            )
        },
        "/api/canned": {
            "get": _op(
                "Canned replies",
                _json(_wrapped("items", {"type": "array", "items": _ref("Canned")})),
            ),
            "post": _op(
                "Add a canned reply (admin)",
                _json(_wrapped("item", _ref("Canned")), "Created"),
                body=_body({"title": _TEXT, "text": _TEXT}),
                errors=("400", "401", "403", "422"),
                changes=True,
                status="201",
            ),
        },
        "/api/canned/{id}": {
            "delete": _op(
                "Delete a canned reply (admin)",
                _json({"type": "object", "properties": {"deleted": {"type": "integer"}}}),
                errors=("401", "403", "404"),
                changes=True,
                path_id=True,
            )
        },
        "/api/report/today": {
            "get": _op("Today's queue figures (bot time not counted)", _json(_ref("TodayFigures")))
        },
        "/api/ws": {
            "get": {
                "summary": "Live events over a WebSocket",
                "description": (
                    "Upgrade to a WebSocket (the session cookie is required). Every queue event"
                    ' arrives as a JSON text frame, e.g. {"type": "queue", …}. Send'
                    ' {"type": "ping"} to be answered {"type": "pong"}; a ping also keeps the'
                    " agent marked online. A console whose session ended is closed with code"
                    " 4401."
                ),
                "responses": {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    "401": _json(_ref("Error"), _ERRORS["401"]),
                },
            }
        },
    }


def openapi_document(server_url: str = "") -> dict[str, Any]:
    """The whole document; ``server_url`` is where the API is served (BILLBOT_PUBLIC_URL)."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "billbot agent console API",
            "version": "1.0.0",
            "description": (
                "What the agent console does, for other tools too. Log in with POST /api/login;"
                " the session is an HttpOnly cookie (billbot_session) valid 12 hours. Every"
                " POST, PUT or DELETE except the login needs the X-CSRF-Token header carrying"
                " the csrf_token from the login or GET /api/me. Errors are"
                ' {"error": {"zh": …, "en": …}}. Personal data is masked unless an admin'
                " unmasks it with a reason, which is audited."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
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
