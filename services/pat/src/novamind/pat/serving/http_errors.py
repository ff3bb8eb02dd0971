"""Taxonomy errors as HTTP answers: the status from the core mapping, a JSON ``{code, message, field}``.

The status comes only from :data:`novamind.core.errors.ERROR_MAPPINGS` (through
``NovamindError.mapping``); FastAPI's own request-validation errors become
:class:`~novamind.core.errors.ValidationError` with the offending field named
(``week.values[42]``) and never the value sent, which may be PHI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novamind.core.errors import NotFoundError, NovamindError, ValidationError


def error_body(error: NovamindError) -> dict[str, Any]:
    """``{"code": ..., "message": ..., "field": ...}`` for ``error``."""
    return {"code": error.code.value, "message": error.message, "field": error.field}


def error_response(error: NovamindError) -> JSONResponse:
    """The mapped HTTP status with :func:`error_body`."""
    return JSONResponse(error_body(error), status_code=error.mapping.http_status)


def _field(location: Sequence[int | str]) -> str | None:
    """``("body", "week", "values", 42)`` -> ``"week.values[42]"``."""
    parts = [p for p in location if p not in ("body", "query", "path")] or list(location)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def validation_error_from(exc: RequestValidationError) -> ValidationError:
    """The first problem FastAPI found, as a ValidationError (message and field, no input value)."""
    errors = exc.errors()
    if not errors:
        return ValidationError("the request is malformed")
    first = errors[0]
    where = _field(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationError(f"{first.get('msg', 'invalid value')}{more}", field=where)


def install_error_handlers(app: FastAPI) -> None:
    """Answer taxonomy, validation and routing errors with :func:`error_response`."""

    async def on_novamind_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NovamindError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error_from(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(NotFoundError("no such resource"))
        code = "VALIDATION_ERROR" if exc.status_code < 500 else "INTERNAL_SERVER_ERROR"
        return JSONResponse(
            {"code": code, "message": str(exc.detail), "field": None},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(NovamindError, on_novamind_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)


class BodySizeLimit:
    """ASGI middleware: refuse HTTP request bodies over ``max_bytes`` before the app reads them.

    A declared ``Content-Length`` over the limit is refused at once; otherwise the body is read
    (and counted) up to the limit, then handed on. The refusal is a ValidationError naming the
    limit (HTTP 422 through the core mapping).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> JSONResponse:
        return error_response(
            ValidationError(f"the request body exceeds the limit of {self.max_bytes} bytes", field="body")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
