"""Error replies: every failure is ``{"error": message, "code": slug}`` with a 4xx/5xx status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str) -> dict[str, str]:
    return {"error": message, "code": code}


def describe_validation(errors: list[dict[str, Any]] | Any, *, limit: int = 3) -> str:
    """``body.bodies.0.frames.2.1: Input should be a valid number`` for the first errors."""
    parts = []
    for err in list(errors)[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(list(errors)) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def malformed_json(errors: list[dict[str, Any]] | Any) -> str | None:
    for err in errors:
        if err.get("type") == "json_invalid":
            loc = err.get("loc", ())
            position = loc[-1] if len(loc) > 1 else "?"
            detail = err.get("ctx", {}).get("error", "not JSON")
            return f"malformed JSON at character {position}: {detail}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        bad_json = malformed_json(errors)
        if bad_json is not None:
            return JSONResponse(error_body("malformed_json", bad_json), status_code=400)
        return JSONResponse(
            error_body("invalid_request", describe_validation(errors)), status_code=422
        )

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback; the client learns what failed without the internals.
        return JSONResponse(
            error_body("internal", f"internal error: {type(exc).__name__}: {exc}"), status_code=500
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 429: "rate_limited"}
        code = codes.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
