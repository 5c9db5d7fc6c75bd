"""The browser page at / and its three static files (public: the page asks for the key).

The page is plain HTML, CSS and JavaScript shipped in the package (service/static),
with no build step and nothing fetched from elsewhere. It talks to the service only
through the public API (/v1/matte, /v1/videos, /openapi.json), sending the API key
the user types, which it keeps in sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only these files are served: nothing is looked up from a client-given path.
_FILES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# Everything comes from this origin; blob: and data: for the images and videos the
# page makes from API answers.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",  # revalidated (ETag) so an upgrade shows at once
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Content-Security-Policy": _CSP},
    )


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    media_type = _FILES.get(name)
    if media_type is None:
        raise HTTPException(404, "Not Found")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_HEADERS)
