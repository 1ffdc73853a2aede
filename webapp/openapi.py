"""OpenAPI 3 description of /api/ (hand-written; limits and enums come from the code itself)."""

from __future__ import annotations

from typing import Any

from procedures_db.settings import Settings
from webapp.lookup import (
    DEFAULT_LIMIT,
    LEVEL_LABELS,
    MAX_FIELD_LENGTH,
    MAX_LIMIT,
    MAX_QUERY_LENGTH,
    ONLINE_LABELS,
)

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_STRINGS = {"type": "array", "items": _STRING}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _schemas() -> dict[str, Any]:
    method_summary = {
        "type": "object",
        "required": ["method", "method_label", "time", "fee"],
        "properties": {
            "method": {"type": "string", "enum": ["truc_tuyen", "truc_tiep", "buu_chinh"]},
            "method_label": _STRING,
            "time": {**_STRING, "description": 'Processing time, or "chưa có thông tin".'},
            "fee": {
                **_STRING,
                "description": "Amounts in đồng found in the fee cell or its description "
                '(they win over a bare "Miễn phí"), else the fee text.',
            },
        },
    }
    result = {
        "type": "object",
        "required": ["code", "name", "score", "levels", "field", "online_level", "methods"],
        "properties": {
            "code": _STRING,
            "name": _STRING,
            "score": {
                "type": "number",
                "nullable": True,
                "minimum": 0,
                "maximum": 1,
                "description": "Relevance (same ranking as the chat bot); null without `q`.",
            },
            "levels": {"type": "array", "items": {"type": "string", "enum": list(LEVEL_LABELS)}},
            "level_labels": _STRINGS,
            "field": _NULLABLE_STRING,
            "online_level": {"type": "string", "enum": list(ONLINE_LABELS)},
            "online_label": _STRING,
            "methods": {"type": "array", "items": _ref("MethodSummary")},
        },
    }
    return {
        "MethodSummary": method_summary,
        "SearchResult": result,
        "SearchResponse": {
            "type": "object",
            "required": ["query", "filters", "count", "results"],
            "properties": {
                "query": _STRING,
                "filters": {"type": "object", "additionalProperties": _STRING},
                "count": {"type": "integer", "minimum": 0},
                "results": {"type": "array", "items": _ref("SearchResult")},
            },
        },
        "Procedure": {
            "type": "object",
            "description": "Every column of the procedure, with its submission methods "
            "(time and fee per method), documents and legal bases.",
            "required": [
                "code",
                "name",
                "levels",
                "methods",
                "documents",
                "legal_bases",
                "answers",
            ],
            "properties": {
                "answers": {
                    "type": "object",
                    "description": "What a person is told, worded as the bot and the staff page "
                    "say it (procedures_db.answers): time, fee (current amounts), place, online "
                    "level, the read-aloud summary and the documents list.",
                    "required": ["time", "fee", "place", "online", "summary", "documents"],
                    "properties": {
                        key: _STRING
                        for key in ("time", "fee", "place", "online", "summary", "documents")
                    },
                },
                "code": _STRING,
                "name": _STRING,
                "field": _NULLABLE_STRING,
                "levels": _STRINGS,
                "online_level": {"type": "string", "enum": list(ONLINE_LABELS)},
                "methods": {"type": "array", "items": {"type": "object"}},
                "documents": {"type": "array", "items": {"type": "object"}},
                "legal_bases": {"type": "array", "items": {"type": "object"}},
                "source_url": _NULLABLE_STRING,
                "imported_at": _NULLABLE_STRING,
            },
            "additionalProperties": True,
        },
        "Fields": {
            "type": "object",
            "required": ["count", "fields"],
            "properties": {"count": {"type": "integer"}, "fields": _STRINGS},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "code", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "code": {
                            "type": "string",
                            "enum": ["bad_parameter", "not_found", "rate_limited", "unavailable"],
                        },
                        "message": {**_STRING, "description": "In Vietnamese."},
                        "parameter": {**_STRING, "description": "The bad parameter (400)."},
                        "procedure": {**_STRING, "description": "The unknown code (404)."},
                    },
                }
            },
        },
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    limit = settings.api_rate_limit_per_minute
    rate = f"{limit} requests per minute per client IP" if limit else "not rate-limited"
    common_errors = {
        "429": _error("Too many requests from this IP (see the Retry-After header)."),
        "503": _error("The database did not answer in time."),
    }
    search_params = [
        _query("q", "Search text, with or without Vietnamese accents (e.g. `doi gplx`).",
               {"type": "string", "maxLength": MAX_QUERY_LENGTH}),
        _query("field", "Exact field (lĩnh vực) name, as listed by /api/fields.",
               {"type": "string", "maxLength": MAX_FIELD_LENGTH}),
        _query("level", "Level that carries out the procedure: bo (ministry), tinh (province), "
               "xa (commune), khac (other). Empty means no filter.",
               {"type": "string", "enum": list(LEVEL_LABELS)}),
        _query("online", "Online-service level. Empty means no filter.",
               {"type": "string", "enum": list(ONLINE_LABELS)}),
        _query("limit", "Maximum number of results.",
               {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    ]  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Thủ tục hành chính — procedures API",
            "version": "1.0.0",
            "description": (
                "Read-only access to the public administrative-procedure data the assistant "
                "answers from. No sign-in is needed: the data is public. Requests are "
                f"{rate}. The staff pages (/staff, including the unanswered-questions page) "
                "are not part of this API and require a staff sign-in."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [],
        "paths": {
            "/api/procedures": {
                "get": {
                    "operationId": "searchProcedures",
                    "summary": "Search procedures (same ranking as the chat bot)",
                    "description": "With `q`: ranked search, accent-insensitive. Without `q` "
                    "but with a filter: procedures matching the filters, by name. With neither: "
                    "an empty list.",
                    "parameters": search_params,
                    "responses": {
                        "200": _ok("SearchResponse", "Matching procedures, best first."),
                        "400": _error("A parameter is invalid (the error names it)."),
                        **common_errors,
                    },
                }
            },
            "/api/procedures/{code}": {
                "get": {
                    "operationId": "getProcedure",
                    "summary": "Everything about one procedure",
                    "parameters": [
                        {
                            "name": "code",
                            "in": "path",
                            "required": True,
                            "description": "Procedure code, e.g. 1.001193.",
                            "schema": {"type": "string", "maxLength": 64},
                        }
                    ],
                    "responses": {
                        "200": _ok("Procedure", "The procedure."),
                        "400": _error("The code is longer than 64 characters."),
                        "404": _error("No procedure has this code."),
                        **common_errors,
                    },
                }
            },
            "/api/fields": {
                "get": {
                    "operationId": "listFields",
                    "summary": "Field (lĩnh vực) names, for the `field` filter",
                    "responses": {"200": _ok("Fields", "All field names."), **common_errors},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This description",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "429": common_errors["429"],
                    },
                }
            },
        },
        "components": {"schemas": _schemas()},
    }
