"""Request bodies parsed by pydantic's own JSON parser: several times cheaper on the event loop
than FastAPI's ``json.loads`` then validation, which is what a flood of large bodies costs."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: Request, model: type[Model]) -> Model:
    """``model`` from the request's JSON body; errors as FastAPI's (handled in errors.py)."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise RequestValidationError([json_error(raw)]) from err
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from err


def json_error(raw: bytes) -> dict[str, Any]:
    """Where the JSON breaks, the way FastAPI reports it (only run once it is known broken)."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as bad:
        position: object = bad.pos
        detail = bad.msg
    except UnicodeDecodeError as bad:
        position, detail = bad.start, "not UTF-8"
    else:  # pragma: no cover - pydantic and json disagree
        position, detail = "?", "not JSON"
    return {"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error",
            "ctx": {"error": detail}}  # fmt: skip


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON body of a route that parses it."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
