"""`python -m common.probe`: the container's health probe; exit 0 when its service answers GET /health.

This is what the image's HEALTHCHECK and compose.yml's `healthcheck:` run inside the container, not
the /health endpoint itself (that is `common.health`'s). Slim images have no curl, and the standard
library is enough. It asks 127.0.0.1 on $PORT, the port gunicorn binds, and never an environment proxy.
"""

import os
import sys
import urllib.request


def main():
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            ok = response.status == 200
    except OSError as e:  # refused, timed out, or an HTTP error status
        sys.exit(f"unhealthy: {url}: {e}")
    sys.exit(0 if ok else f"unhealthy: {url}: status {response.status}")


if __name__ == "__main__":
    main()
