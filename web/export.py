"""`python -m web.export DIR`: the Web UI as files for a static or edge host.

The page is the one the Web UI serves (rendered once by the app itself, with PUBLIC_API_URL and
PUBLIC_ORCHESTRATOR_URL from the environment), its static files are copied unchanged, and `_headers`
gives the host the same security headers, CSP included, in the format Netlify and Cloudflare Pages
read. Any other host must be set to send those headers itself.
"""

import shutil
import sys
from pathlib import Path

from common.config import ConfigError
from web import create_app

# The headers the Web UI sends with every response, which a static host must send in its place.
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "Cross-Origin-Opener-Policy",
    "Permissions-Policy",
    "Referrer-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
)


def export(target, env=None):
    """Write index.html, static/ and _headers into the folder `target` (created; must be empty)."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty")
    app = create_app(env)
    page = app.test_client().get("/")
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.html").write_bytes(page.get_data())
    shutil.copytree(app.static_folder, target / "static")
    lines = ["/*"] + [f"  {name}: {page.headers[name]}" for name in SECURITY_HEADERS if name in page.headers]
    (target / "_headers").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m web.export DIR   (with PUBLIC_API_URL and PUBLIC_ORCHESTRATOR_URL set)")
    try:
        export(sys.argv[1])
    except (ConfigError, FileExistsError) as e:
        sys.exit(f"export: {e}")
    print(f"wrote the Web UI to {sys.argv[1]}: index.html, static/, _headers")
