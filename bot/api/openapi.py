"""The OpenAPI 3.1 document of the HTTP API, built from the pydantic models of :mod:`bot.api.models` (their JSON
Schemas are the components), so what the document promises is what the server validates and returns."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic.json_schema import models_json_schema

from bot import __version__
from bot.api import models

REF = "#/components/schemas/{model}"
_MODELS = (models.SessionOut, models.AnalyzeOut, models.RefineIn, models.RefineOut, models.TurnResult,
           models.Problem)
_PROBLEMS = {
    "400": "The request cannot be read.",
    "401": "No API key, or not a live one.",
    "404": "No such session (or another key's), turn, angle or file.",
    "405": "Method not allowed.",
    "409": "The session is working on another analysis (one at a time).",
    "413": "A file is over `DATASTORY_MAX_FILE_MB`, too many files, or a request body over 1 MB.",
    "415": "Not a type datastory reads, or not multipart/form-data.",
    "422": "A file that cannot be read as a table, or an invalid body.",
    "429": "Rate limit or daily budget reached; see `Retry-After`.",
    "502": "The analysis failed (the detail says why).",
    "503": "The server is shutting down.",
}


def _ref(model: type[Any]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: {"description": _PROBLEMS[code], "content": {"application/problem+json": {
        "schema": _ref(models.Problem)}}} for code in ("401", "404", "405", *codes)}


_SESSION = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TURN = {"name": "turn_id", "in": "path", "required": True, "schema": {"type": "string"}}
_FILE = {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PREFER = {"name": "Prefer", "in": "header", "required": False, "description": "`respond-async`: answer 202 at "
           "once with the turn's status URL (`Location`) instead of waiting.", "schema": {"type": "string"}}
_ASYNC = {"202": _json(models.TurnResult, "Started (Prefer: respond-async); poll the Location.")}


def _paths() -> dict[str, Any]:
    session = "/v1/sessions/{session_id}"
    return {
        "/v1/sessions": {"post": {
            "operationId": "createSession", "summary": "Upload one or more tables; opens a session.",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"]}}}},
            "responses": {"201": _json(models.SessionOut, "The session and how each file was read."),
                          **_errors("400", "413", "415", "422", "429", "503")}}},
        session: {
            "get": {"operationId": "getSession", "summary": "The session, its files and its turns.",
                    "parameters": [_SESSION], "responses": {"200": _json(models.SessionOut, "The session."),
                                                            **_errors()}},
            "delete": {"operationId": "deleteSession", "summary": "Delete the session, its workspace and files.",
                       "parameters": [_SESSION], "responses": {"204": {"description": "Deleted."}, **_errors()}}},
        f"{session}/analyze": {"post": {
            "operationId": "analyze", "summary": "Story angles of the session's data.",
            "parameters": [_SESSION, _PREFER],
            "responses": {"200": _json(models.AnalyzeOut, "The angles."), **_ASYNC,
                          **_errors("409", "429", "502", "503")}}},
        f"{session}/refine": {"post": {
            "operationId": "refine", "summary": "The full story of one angle, or the answer to a question.",
            "parameters": [_SESSION, _PREFER],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(models.RefineIn)}}},
            "responses": {"200": _json(models.RefineOut, "Narrative, charts, result files and code."), **_ASYNC,
                          **_errors("409", "413", "422", "429", "502", "503")}}},
        f"{session}/turns/{{turn_id}}": {
            "get": {"operationId": "getTurn", "summary": "A turn's state and, once done, its result.",
                    "parameters": [_SESSION, _TURN],
                    "responses": {"200": _json(models.TurnResult, "The turn."), **_errors("502")}},
            "delete": {"operationId": "cancelTurn", "summary": "Cancel a queued or running turn.",
                       "parameters": [_SESSION, _TURN],
                       "responses": {"200": _json(models.TurnResult, "The turn, cancelled (or already finished)."),
                                     **_errors("502")}}},
        f"{session}/files/{{file_id}}": {"get": {
            "operationId": "getFile", "summary": "Stream a chart or result file.",
            "parameters": [_SESSION, _FILE],
            "responses": {"200": {"description": "The file's bytes.", "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}, **_errors()}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once)."""
    _, schemas = models_json_schema([(m, "validation" if m is models.RefineIn else "serialization")
                                     for m in _MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "datastory API", "version": __version__,
                 "description": "Upload tables, get story angles, refine one into a narrative with charts."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "`datastory api-key create NAME`"}}},
    }
