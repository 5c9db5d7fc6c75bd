"""FastAPI dependencies as Annotated aliases, so routes stay one-liners."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security

from service.auth import bearer_scheme, check_api_key, header_scheme
from service.batcher import Batcher
from service.errors import NotReadyError
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.matting
    return state


State = Annotated[ServiceState, Depends(get_state)]


def require_key(
    request: Request,
    state: State,
    _bearer: Annotated[object, Security(bearer_scheme)] = None,
    _header: Annotated[object, Security(header_scheme)] = None,
) -> None:
    check_api_key(request, state.keys)


def get_batcher(state: State) -> Batcher:
    if state.batcher is None or not state.ready:
        raise NotReadyError(state.load_error or "the model is loading; retry shortly")
    return state.batcher


ReadyBatcher = Annotated[Batcher, Depends(get_batcher)]
Authorized = Depends(require_key)
