"""Every failure becomes a JSON body {"error": {"type", "message"}} with a fitting status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from matting.errors import InputError, InputTooLargeError, MattingError, UnsupportedTypeError
from service.batcher import (
    DeadlineExceededError,
    InferenceError,
    QueueFullError,
    ServiceClosedError,
)
from service.jobs.errors import (
    JobNotFoundError,
    JobQueueFullError,
    QueueUnavailableError,
)


class NotReadyError(MattingError):
    """The model is still loading or warming up."""


class AuthError(MattingError):
    """A missing or unknown API key."""


class JobNotReadyError(MattingError):
    """A job's result was asked for before the job succeeded."""


class JobsDisabledError(MattingError):
    """Video jobs are not set up in this process (no queue)."""


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# Most specific first: the first isinstance match wins.
_STATUS: tuple[tuple[type[MattingError], int], ...] = (
    (InputTooLargeError, 413),
    (UnsupportedTypeError, 415),
    (InputError, 400),
    (AuthError, 401),
    (JobNotFoundError, 404),
    (JobNotReadyError, 409),
    (JobQueueFullError, 503),
    (QueueUnavailableError, 503),
    (JobsDisabledError, 503),
    (QueueFullError, 503),
    (ServiceClosedError, 503),
    (NotReadyError, 503),
    (DeadlineExceededError, 504),
    (InferenceError, 500),
)

# For the OpenAPI document: the error answers every matting route may give.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "Corrupt or unusable input, or bad options"},
    401: {"model": ErrorBody, "description": "Missing or unknown API key (when auth is on)"},
    413: {"model": ErrorBody, "description": "Body, pixel count or side over the limits"},
    415: {"model": ErrorBody, "description": "Not a JPEG, PNG or WebP (sniffed from the bytes)"},
    422: {"model": ErrorBody, "description": "Invalid query parameters"},
    503: {"model": ErrorBody, "description": "Queue full or not ready; see Retry-After"},
    504: {"model": ErrorBody, "description": "The request's deadline passed"},
}


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )


def status_of(e: MattingError) -> int:
    for cls, status in _STATUS:
        if isinstance(e, cls):
            return status
    return 500


def _matting_error(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, MattingError)
    headers = {}
    if isinstance(e, QueueFullError):
        headers["Retry-After"] = str(e.retry_after_s)
    elif isinstance(e, NotReadyError | ServiceClosedError | QueueUnavailableError):
        headers["Retry-After"] = "5"
    elif isinstance(e, JobQueueFullError):
        headers["Retry-After"] = "30"
    elif isinstance(e, AuthError):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(status_of(e), type(e).__name__, str(e), headers)


def _validation_error(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, RequestValidationError)
    parts = []
    for err in e.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "body"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return error_response(422, "ValidationError", "; ".join(parts) or "invalid request")


def _http_error(_request: Request, e: Exception) -> JSONResponse:
    assert isinstance(e, StarletteHTTPException)
    return error_response(e.status_code, "HTTPError", str(e.detail), dict(e.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MattingError, _matting_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
