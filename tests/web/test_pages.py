"""The Web UI's page and static files: what is served, the CSP and headers that lock the page down,
markup a strict CSP lets run and a screen reader can use, and refusal to start without its settings.

Most tests run the app in-process (it needs no database). /metrics, summed across workers, and paths
meant to climb out of the static folder are checked against real gunicorn, which receives the raw
request line a browser or an attacker sends.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.config import ConfigError
from common.lifecycle import shutdown
from tests.support.services import ROOT
from web import create_app
from web.export import SECURITY_HEADERS, export

API = "http://127.0.0.1:4000"
ORCHESTRATOR = "https://gw.example.com/oneshot/orchestrator/"  # behind a path prefix, with a trailing slash
SETTINGS = {"PUBLIC_API_URL": API, "PUBLIC_ORCHESTRATOR_URL": ORCHESTRATOR}
# Both are JavaScript MIME types a browser runs as a module (the HTML standard prefers the first).
JS_TYPES = ("text/javascript", "application/javascript")
TYPES = {".css": ("text/css",), ".js": JS_TYPES, ".svg": ("image/svg+xml",)}
# CSP sources that would let in inline code, any host, or content made up by script.
LOOSE_SOURCES = {
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'unsafe-hashes'",
    "'wasm-unsafe-eval'",
    "data:",
    "blob:",
    "filesystem:",
    "http:",
    "https:",
}
# Static imports and re-exports (`import {a} from "./a.js"`, `import "./b.js"`) and dynamic ones.
IMPORT_RE = re.compile(
    r"""^\s*(?:import|export)\b[^;"']*?\bfrom\s*["']([^"']+)["']"""
    r"""|^\s*import\s*["']([^"']+)["']"""
    r"""|\bimport\(\s*["']([^"']+)["']\s*\)""",
    re.MULTILINE,
)


@pytest.fixture
def make_app():
    """Build the Web UI with the public URLs overridden: `make_app(PUBLIC_API_URL=...)`."""
    apps = []

    def make(**settings):
        apps.append(create_app({**SETTINGS, **settings}))
        return apps[-1]

    yield make
    for app in apps:
        shutdown(app)


@pytest.fixture
def client(make_app):
    """A test client of the Web UI with the default public URLs (no database needed)."""
    return make_app().test_client()


@dataclass
class Element:
    """One element of the page: its tag, attributes and (for <script> and <style>) text."""

    tag: str
    attrs: dict
    text: str = ""


class Markup(HTMLParser):
    """The page parsed: every element with its attributes, and the text inside <script> and <style>."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self._raw = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append(Element(tag, dict(attrs)))
        self._raw = self.elements[-1] if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._raw = None

    def handle_data(self, data):
        if self._raw is not None:
            self._raw.text += data

    def find(self, *tags):
        return [e for e in self.elements if e.tag in tags]


def get_page(client):
    """GET / and parse it."""
    response = client.get("/")
    assert response.status_code == 200
    return response, Markup(response.get_data(as_text=True))


def policy(response):
    """The response's one Content-Security-Policy header as {directive: [sources]}."""
    headers = response.headers.getlist("Content-Security-Policy")
    assert len(headers) == 1, headers  # a second policy would hold too, unseen by whoever reads the first
    directives = [d.split() for d in headers[0].split(";") if d.strip()]
    return {d[0]: d[1:] for d in directives}


def media_type(response):
    """The Content-Type without its parameters."""
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def test_page_is_served_as_html(client):
    response, markup = get_page(client)
    assert media_type(response) == "text/html"
    assert response.get_data(as_text=True).lstrip().lower().startswith("<!doctype html>")
    assert [e.attrs.get("charset") for e in markup.find("meta") if "charset" in e.attrs] == ["utf-8"]
    assert [e.attrs.get("lang") for e in markup.find("html")] == ["en"]


@pytest.mark.parametrize(
    "settings, api, orchestrator",
    [
        ({}, API, ORCHESTRATOR.rstrip("/")),
        (
            {"PUBLIC_API_URL": "https://api.example.com/", "PUBLIC_ORCHESTRATOR_URL": "http://localhost:4001"},
            "https://api.example.com",
            "http://localhost:4001",
        ),
    ],
    ids=["port_and_path_prefix", "origins"],
)
def test_public_urls_reach_the_page_in_data_attributes(make_app, settings, api, orchestrator):
    _, markup = get_page(make_app(**settings).test_client())
    (body,) = markup.find("body")
    assert body.attrs["data-api-url"] == api
    assert body.attrs["data-orchestrator-url"] == orchestrator


def test_heartbeat_interval_reaches_the_page(make_app):
    """The page takes a stream that stays silent too long for dead, so it must know the interval."""
    for settings, seconds in (({}, "15"), ({"SSE_HEARTBEAT_SECONDS": "4"}, "4")):
        _, markup = get_page(make_app(**settings).test_client())
        assert markup.find("body")[0].attrs["data-heartbeat-seconds"] == seconds


@pytest.mark.parametrize(
    "settings, connect",
    [
        ({}, [API, "https://gw.example.com/oneshot/orchestrator/"]),
        (
            {"PUBLIC_API_URL": "https://api.example.com/", "PUBLIC_ORCHESTRATOR_URL": "https://gw.example.com/o"},
            ["https://api.example.com", "https://gw.example.com/o/"],
        ),
    ],
    ids=["port_and_path_prefix", "origin_and_short_path"],
)
def test_csp_allows_this_origin_and_the_two_public_urls_only(make_app, settings, connect):
    """A URL with a path becomes a prefix ("/" at its end); without it a CSP source matches one exact path."""
    response, _ = get_page(make_app(**settings).test_client())
    csp = policy(response)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == connect
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]


def test_csp_has_no_source_that_loosens_it(client):
    response, _ = get_page(client)
    for directive, sources in policy(response).items():
        assert not LOOSE_SOURCES & {s.lower() for s in sources}, directive
        assert not any("*" in s for s in sources), directive


def test_page_headers_forbid_sniffing_referrers_and_framing(client):
    response, _ = get_page(client)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_markup_has_no_inline_script_style_or_handler(client):
    _, markup = get_page(client)
    scripts = markup.find("script")
    assert scripts, "the page loads no script at all"
    for script in scripts:
        assert script.attrs.get("src"), f"inline script: {script}"
        assert not script.text.strip(), f"a script with both src and text: {script}"
    assert not markup.find("style")
    for element in markup.elements:
        assert "style" not in element.attrs, element
        assert not [name for name in element.attrs if name.startswith("on")], element
        urls = [element.attrs.get(name) or "" for name in ("href", "src", "action", "formaction")]
        assert not [u for u in urls if u.strip().lower().startswith("javascript:")], element


def test_every_field_has_a_label_and_every_label_a_field(client):
    _, markup = get_page(client)
    ids = [e.attrs["id"] for e in markup.elements if "id" in e.attrs]
    assert len(ids) == len(set(ids)), "duplicate ids"
    fields = [e for e in markup.find("input", "textarea", "select") if e.attrs.get("type") != "hidden"]
    labelled = [label.attrs.get("for") for label in markup.find("label")]
    assert fields and labelled
    assert set(labelled) <= {f.attrs.get("id") for f in fields}, "a label points at no field"
    assert [f.attrs.get("id") for f in fields if f.attrs.get("id") not in labelled] == [], "a field without label"


def referenced_assets(markup):
    """Every URL the markup loads (href/src), as paths on this server."""
    urls = [e.attrs[name] for e in markup.elements for name in ("href", "src") if e.attrs.get(name)]
    parts = [urllib.parse.urlsplit(url) for url in urls]
    assert not [u for u, p in zip(urls, parts, strict=True) if p.scheme or p.netloc], "an asset from another origin"
    return [p.path for p in parts]


def test_every_asset_the_page_references_is_served(client):
    page, markup = get_page(client)
    assets = referenced_assets(markup)
    assert {".css", ".js"} <= {os.path.splitext(a)[1] for a in assets}
    for path in assets:
        assert os.path.splitext(path)[1] in TYPES, f"an asset of a type this test does not know: {path}"
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.data, path
        assert media_type(response) in TYPES[os.path.splitext(path)[1]], (path, response.content_type)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
        # An SVG or script opened on its own is a document too: the same policy must hold there.
        assert policy(response) == policy(page), path
        response.close()


def test_every_module_the_page_imports_is_served(client):
    """Crawl the module graph from the page's <script> tags the way the browser resolves it."""
    _, markup = get_page(client)
    pending = [urllib.parse.urljoin("/", s.attrs["src"]) for s in markup.find("script")]
    seen = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        assert media_type(response) in JS_TYPES, (path, response.content_type)
        for match in IMPORT_RE.finditer(response.get_data(as_text=True)):
            specifier = next(s for s in match.groups() if s)
            # A bare name ("lodash") resolves to nothing in a browser without an import map.
            assert specifier.startswith(("./", "../", "/")), (path, specifier)
            pending.append(urllib.parse.urljoin(path, specifier))
        response.close()
    assert len(seen) > 1, f"no imports found from {seen}"


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_health_and_ready_answer_ok_without_dependencies(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}


def test_unknown_path_is_a_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def scrape(url):
    """Every sample /metrics shows, as {(name, frozenset(labels)): value}."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=5)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain")
    text = response.read().decode()
    connection.close()
    families = text_string_to_metric_families(text)
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def count_index(samples):
    """Requests for the page answered 200, as /metrics counts them."""
    name = "flask_http_request_duration_seconds_count"
    labels = {("endpoint", "pages.index"), ("status", "200")}
    return sum(v for (n, ls), v in samples.items() if n == name and labels <= ls)


def raw_get(url, path, redirects=3):
    """GET `path` exactly as written (no client-side normalisation of ".."), following the server's
    redirects as a browser would; return (status, body)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=5)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        status, body, location = response.status, response.read(), response.getheader("Location")
    finally:
        connection.close()
    if 300 <= status < 400 and location and redirects:
        target = urllib.parse.urlsplit(urllib.parse.urljoin(url + path, location))
        assert target.netloc == urllib.parse.urlsplit(url).netloc, f"{path} redirects away to {location}"
        return raw_get(url, urllib.parse.urlunsplit(("", "", target.path, target.query, "")), redirects - 1)
    return status, body


def test_metrics_count_page_views_across_workers(start_service):
    web = start_service("web", SETTINGS)
    before = count_index(scrape(web.url))
    for _ in range(8):  # each on a new connection, to whichever worker takes it
        assert raw_get(web.url, "/")[0] == 200
    assert count_index(scrape(web.url)) - before == 8


SOURCES = [ROOT / "web" / name for name in ("__init__.py", "pages.py", "wsgi.py")] + [ROOT / "common" / "config.py"]
HOSTILE_PATHS = [
    "/static/../web/__init__.py",
    "/static/../__init__.py",
    "/static/../pages.py",
    "/static/%2e%2e/web/pages.py",
    "/static/%2e%2e/pages.py",
    "/static/.%2e/pages.py",
    "/static/..%2fpages.py",
    "/static/..%2f..%2fweb%2fpages.py",
    "/static/..%5cpages.py",
    "/static/%252e%252e/pages.py",
    "/static/js/../../pages.py",
    "/static/js/%2e%2e/%2e%2e/wsgi.py",
    "/static/app.css/../../pages.py",
    "/static/../../common/config.py",
    "/static/%2e%2e/%2e%2e/common/config.py",
    "/static/../templates/index.html",
    "/static/%2e%2e/templates/index.html",
    f"/static/{ROOT}/web/pages.py",
    f"/static/{urllib.parse.quote(str(ROOT / 'web' / 'pages.py'), safe='')}",
    "/static//etc/passwd",
    "/../web/pages.py",
    "/pages.py",
    "/web/pages.py",
    "/__init__.py",
]


def test_hostile_paths_never_return_source(start_service):
    web = start_service("web", SETTINGS)
    # The first line of each file (its docstring), and what template source and /etc/passwd look like.
    secrets = [path.read_text().strip().splitlines()[0].encode() for path in SOURCES]
    secrets += [b"def create_app", b"{{ url_for", b"root:x:0:0"]
    for path in HOSTILE_PATHS:
        status, body = raw_get(web.url, path)
        assert status == 404, (path, status, body[:200])  # as if the file were not there
        assert not [s for s in secrets if s in body], (path, body[:200])
    assert raw_get(web.url, "/static/app.css")[0] == 200  # the folder itself is served


@pytest.mark.parametrize(
    "settings, named",
    [
        ({}, "PUBLIC_API_URL"),
        ({"PUBLIC_API_URL": API}, "PUBLIC_ORCHESTRATOR_URL"),
        ({"PUBLIC_ORCHESTRATOR_URL": ORCHESTRATOR}, "PUBLIC_API_URL"),
        ({**SETTINGS, "PUBLIC_ORCHESTRATOR_URL": "http://a.test;script-src *"}, "PUBLIC_ORCHESTRATOR_URL"),
    ],
    ids=["neither", "no_orchestrator", "no_api", "hostile_orchestrator"],
)
def test_missing_or_bad_public_url_refuses_to_build_the_app(settings, named):
    with pytest.raises(ConfigError) as error:
        create_app(settings)
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def preflight(env):
    return subprocess.run(
        [sys.executable, "-m", "common.preflight", "web"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env, named",
    [({}, "PUBLIC_API_URL"), ({"PUBLIC_API_URL": API}, "PUBLIC_ORCHESTRATOR_URL")],
    ids=["neither", "no_orchestrator"],
)
def test_preflight_stops_start_up_with_one_line_naming_the_missing_url(env, named):
    result = preflight(env)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = json.loads(lines[0])
    assert line["level"] == "ERROR" and line["msg"].startswith("config error:") and named in line["msg"], line


def test_preflight_passes_with_both_urls_and_no_database():
    result = preflight(SETTINGS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_export_for_a_static_host_is_the_served_page_its_files_and_its_headers(client, tmp_path):
    site = tmp_path / "site"
    export(site, SETTINGS)
    page, markup = get_page(client)
    assert (site / "index.html").read_bytes() == page.get_data()
    exported = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {path.lstrip("/") for path in referenced_assets(markup)} <= exported
    for path in exported - {"index.html", "_headers"}:
        served = client.get(f"/{path}")
        assert served.status_code == 200 and (site / path).read_bytes() == served.get_data(), path
        served.close()
    rules = (site / "_headers").read_text().splitlines()
    assert rules[0] == "/*"  # Netlify / Cloudflare Pages: these headers on every path
    assert dict(line.strip().split(": ", 1) for line in rules[1:]) == {
        name: page.headers[name] for name in SECURITY_HEADERS
    }


def test_export_refuses_without_the_public_urls_or_into_a_folder_in_use(tmp_path):
    command = [sys.executable, "-m", "web.export", str(tmp_path / "site")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLIC_")}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and refused.stderr.startswith("export: PUBLIC_API_URL is required")
    assert not (tmp_path / "site").exists()
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "keep.txt").write_text("mine")
    refused = subprocess.run(command, cwd=ROOT, env={**env, **SETTINGS}, capture_output=True, text=True)
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["keep.txt"]
