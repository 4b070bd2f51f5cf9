"""The Docker Compose files, the Dockerfiles and the Render Blueprint, checked without a Docker engine.

The Compose files validate against the Compose Specification's JSON Schema; every Dockerfile passes
hadolint and copies only paths that exist; and each image's command is run here, from a folder laid
out exactly as its COPY lines lay out the image, to prove the image would serve.
"""

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from tests.support.services import ROOT, Service, gunicorn_command, service_env

SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"  # the Compose Specification's own schema
SERVICES = {"api": 4000, "orchestrator": 4001, "preview": 4002, "web": 3000}
HADOLINT = Path(sys.executable).parent / "hadolint"


def compose(name):
    return yaml.safe_load((ROOT / name).read_text())


def dockerfile(service):
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / service / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage(service):
    instructions = dockerfile(service)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def copies(service):
    """The (sources, destination) of each COPY into the final image from the build context."""
    found = []
    for keyword, args in final_stage(service):
        if keyword == "COPY" and not args.startswith("--from"):
            *sources, destination = args.split()
            found.append((sources, destination))
    return found


@pytest.fixture(scope="module")
def schema():
    return json.loads(SCHEMA.read_text())


@pytest.mark.parametrize("name", ["compose.yml", "compose.preview.yml"])
def test_compose_files_validate_against_the_compose_schema(schema, name):
    jsonschema.Draft7Validator(schema).validate(compose(name))


def test_the_schema_check_catches_a_broken_compose_file(schema):
    broken = compose("compose.yml")
    broken["services"]["api"]["depends_on"]["db"]["condition"] = "service_ready"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def test_the_database_is_private_persistent_and_health_checked():
    db = compose("compose.yml")["services"]["db"]
    assert db["image"] == "postgres:16"
    assert "ports" not in db and "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose("compose.yml")["volumes"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_builds_from_its_own_dockerfile_and_waits_for_what_it_needs(service):
    spec = compose("compose.yml")["services"][service]
    assert spec["build"] == {"context": ".", "dockerfile": f"{service}/Dockerfile"}
    assert (ROOT / spec["build"]["dockerfile"]).is_file()
    assert spec["env_file"] == ".env"
    assert spec["ports"] == [f"127.0.0.1:{SERVICES[service]}:{SERVICES[service]}"]
    assert spec["environment"]["PORT"] == str(SERVICES[service])
    assert spec["healthcheck"]["test"] == ["CMD", "python", "-m", "common.healthcheck"]
    assert spec["depends_on"] and all(d["condition"] == "service_healthy" for d in spec["depends_on"].values())
    # Compose's default 10 s would SIGKILL gunicorn while it still closes streams (graceful_timeout 25 s).
    assert int(spec["stop_grace_period"].rstrip("s")) > 25


def test_the_preview_overlay_routes_a_lvh_me_host_to_each_service():
    overlay = compose("compose.preview.yml")["services"]
    assert overlay["traefik"]["image"].startswith("traefik:v3")
    for service, port in SERVICES.items():
        labels = overlay[service]["labels"]
        assert labels[f"traefik.http.routers.{service}.rule"] == f"Host(`{service}.lvh.me`)"
        assert labels[f"traefik.http.services.{service}.loadbalancer.server.port"] == str(port)
    assert overlay["web"]["environment"]["PUBLIC_API_URL"] == "http://api.lvh.me"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_passes_hadolint(service):
    result = subprocess.run([str(HADOLINT), str(ROOT / service / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_pinned_non_root_health_checked_and_runs_the_common_command(service):
    instructions = dockerfile(service)
    for keyword, args in instructions:
        if keyword == "FROM":
            assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+( AS \w+)?", args), args
    final = dict(final_stage(service))  # the last of each keyword wins, as in Docker
    assert final["USER"].split(":")[0].isdigit() and not final["USER"].startswith("0")
    assert json.loads(final["CMD"]) == gunicorn_command(service)
    assert final["HEALTHCHECK"].endswith('CMD ["python", "-m", "common.healthcheck"]')
    assert f"PORT={SERVICES[service]}" in final["ENV"]
    # Dependencies come from the pinned file in a layer of their own, before any code is copied.
    text = (ROOT / service / "Dockerfile").read_text()
    order = [text.index(step) for step in ("COPY requirements.txt", "-r /tmp/requirements.txt", "COPY common/")]
    assert order == sorted(order)
    assert not any(keyword == "RUN" and "apt-get" in args for keyword, args in instructions)


@pytest.mark.parametrize("service", SERVICES)
def test_every_path_a_dockerfile_copies_exists_and_no_secret_reaches_the_context(service):
    for sources, _ in copies(service):
        for source in sources:
            assert (ROOT / source).exists(), f"{service}/Dockerfile copies {source}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", ".data"} <= set(ignored)


def image_root(service, into):
    """Lay out `into` as the image's /app: exactly what the final stage's COPY lines put there."""
    for sources, destination in copies(service):
        for source in sources:
            target = into / destination
            if (ROOT / source).is_dir():  # COPY dir/ dir/ copies the folder's contents
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target)
    return into


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_command_serves_from_what_the_image_contains(service, database_url, tmp_path):
    app_dir = image_root(service, tmp_path / "app")
    assert sorted(p.name for p in app_dir.iterdir()) == sorted(["gunicorn.conf.py", "common", "sql", service])
    env = service_env(
        database_url,
        API_URL="http://127.0.0.1:9",  # the Preview Manager's upstream; /health does not ask it
        PUBLIC_API_URL="http://localhost:4000",
        PUBLIC_ORCHESTRATOR_URL="http://localhost:4001",
        PYTHONDONTWRITEBYTECODE="1",  # as in the image, whose /app the service cannot write
    )
    running = Service(service, env, tmp_path / "service.log", cwd=app_dir)
    check = [sys.executable, "-m", "common.healthcheck"]  # the image's HEALTHCHECK
    try:
        running.start()  # the Dockerfile's CMD (gunicorn_command), on the PORT it was given
        assert requests.get(f"{running.url}/health", timeout=5).json() == {"ok": True}
        healthy = subprocess.run(check, cwd=app_dir, env=running.env, capture_output=True, text=True)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        running.stop()
    unhealthy = subprocess.run(check, cwd=app_dir, env=running.env, capture_output=True, text=True)
    assert unhealthy.returncode != 0 and "unhealthy" in unhealthy.stderr


def test_the_render_blueprint_builds_each_service_from_its_dockerfile_with_every_required_setting():
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    groups = {group["name"]: group["envVars"] for group in blueprint["envVarGroups"]}
    databases = {database["name"] for database in blueprint["databases"]}
    services = {spec["name"].removeprefix("oneshot-"): spec for spec in blueprint["services"]}
    assert set(services) == set(SERVICES)
    for service, spec in services.items():
        assert (spec["runtime"], spec["dockerContext"], spec["healthCheckPath"]) == ("docker", ".", "/health")
        assert (ROOT / spec["dockerfilePath"]).resolve() == ROOT / service / "Dockerfile"
        provided = set()
        for entry in spec["envVars"]:
            for var in groups[entry["fromGroup"]] if "fromGroup" in entry else [entry]:
                assert "fromDatabase" not in var or var["fromDatabase"]["name"] in databases
                provided.add(var["key"])
        assert set(importlib.import_module(service).REQUIRED_SETTINGS) <= provided, service
