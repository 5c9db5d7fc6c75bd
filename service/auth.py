"""Optional API-key auth: `Authorization: Bearer KEY` or `X-API-Key: KEY`.

Keys are compared in constant time, and every key is tried whatever the
result, so the time taken does not tell which key (or how much of one) matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from fastapi import Request
from fastapi.security import APIKeyHeader, HTTPBearer

from service.errors import AuthError

# Declared for the OpenAPI document (the "Authorize" button); checked below.
bearer_scheme = HTTPBearer(auto_error=False, description="API key as a bearer token")
header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def presented_key(request: Request) -> bytes | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip().encode()
    key = request.headers.get("x-api-key", "").strip()
    return key.encode() if key else None


def key_matches(presented: bytes, keys: Sequence[bytes]) -> bool:
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(presented, key)
    return ok


def check_api_key(request: Request, keys: Sequence[bytes]) -> None:
    """Raise AuthError unless auth is off or the request carries a known key."""
    if not keys:
        return
    presented = presented_key(request)
    if presented is None:
        raise AuthError("this service needs an API key: send 'Authorization: Bearer KEY'")
    if not key_matches(presented, keys):
        raise AuthError("unknown API key")


def client_scope(request: Request, keys: Sequence[bytes]) -> str:
    """Who sent the request, for scoping what clients name (idempotency keys): a digest of
    their API key, or "anonymous" with auth off. The key itself is never stored."""
    presented = presented_key(request) if keys else None
    if presented is None:
        return "anonymous"
    return "key-" + hashlib.sha256(presented).hexdigest()[:32]
