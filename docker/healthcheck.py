"""Container healthcheck: exit 0 when GET http://127.0.0.1:PORT/PATH answers 2xx, else 1.

    python healthcheck.py /livez            # the API (port: MATTING_PORT, default 8000)
    python healthcheck.py /metrics 9100     # a worker's metrics server

Standard library only, because the images carry no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/livez"
    port = argv[2] if len(argv) > 2 else os.environ.get("MATTING_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as r:
            return 0 if 200 <= r.status < 300 else 1
    except Exception as e:  # any failure is "unhealthy"; say why in `docker inspect`
        print(f"unhealthy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
