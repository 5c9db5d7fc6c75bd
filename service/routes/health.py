"""Liveness, readiness, metrics and model information."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from service.deps import State

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str  # alive | ready | loading | failed
    detail: str | None = None


@router.get("/livez", response_model=Health, summary="Liveness")
def livez(state: State) -> JSONResponse:
    """200 while the process can serve or is still loading; 503 once loading the
    model has failed (a restart is the fix)."""
    if state.load_error is not None:
        return JSONResponse(Health(status="failed", detail=state.load_error).model_dump(), 503)
    return JSONResponse(Health(status="alive").model_dump())


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses={503: {"model": Health, "description": "Loading, warming up or failed"}},
)
def readyz(state: State) -> JSONResponse:
    """200 only once the model is loaded and warmed up."""
    if state.ready:
        return JSONResponse(Health(status="ready").model_dump())
    if state.load_error is not None:
        body = Health(status="failed", detail=state.load_error)
    else:
        body = Health(status="loading", detail="loading and warming up the model")
    return JSONResponse(body.model_dump(), 503, headers={"Retry-After": "5"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
