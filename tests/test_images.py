"""The Docker Compose files, the Dockerfile and the Render Blueprint, checked without a Docker engine.

The Compose files validate against the Compose Specification's JSON Schema; the one Dockerfile passes
hadolint, copies only paths that exist, and is read here stage by stage, as `docker build
--build-arg SERVICE=<service> .` would follow it, to check what each image holds and that a missing
or unknown SERVICE stops the build. Each image's command is then run here, from a folder laid out
exactly as its COPY lines lay out the image, to prove the image would serve.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from tests.support.services import ROOT, Service, gunicorn_command, service_env

SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"  # the Compose Specification's own schema
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"api": 4000, "orchestrator": 4001, "preview": 4002, "web": 3000}
READS_SQL = {"api", "orchestrator"}  # the services with a database; web and preview never open sql/
HADOLINT = Path(sys.executable).parent / "hadolint"


def compose(name):
    return yaml.safe_load((ROOT / name).read_text())


def instructions():
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


@dataclass
class Stage:
    base: str
    name: str | None
    body: list = field(default_factory=list)  # its (KEYWORD, arguments) after FROM


def parse():
    """The Dockerfile as (the instructions before the first FROM, its stages in order)."""
    preamble, stages = [], []
    for keyword, args in instructions():
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.IGNORECASE)
            stages.append(Stage(match[1], match[2] and match[2].lower()))
        else:
            (stages[-1].body if stages else preamble).append((keyword, args))
    return preamble, stages


def build(service):
    """What `docker build --build-arg SERVICE=<service> .` (no --target) goes through: the stages from
    the first one built to the last, and the image the first starts FROM ("" when FROM is blank)."""
    stages = parse()[1]
    named = {stage.name: stage for stage in stages if stage.name}
    chain, stage = [], stages[-1]  # without --target, Docker builds the last stage
    while True:
        assert stage not in chain, f"stage {stage.name} is its own base"
        chain.insert(0, stage)
        base = re.sub(r"\$\{SERVICE\}|\$SERVICE\b", service, stage.base)
        if base.lower() not in named:
            return chain, base
        stage = named[base.lower()]


def image(service):
    """Every instruction that makes the service's image, in order (a stage inherits its base's config)."""
    return [instruction for stage in build(service)[0] for instruction in stage.body]


def config(service):
    """The image's config: its ENV variables, and the last USER, EXPOSE, HEALTHCHECK and CMD."""
    made = image(service)
    env = dict(pair.split("=", 1) for keyword, args in made if keyword == "ENV" for pair in args.split())
    return {"ENV": env} | {keyword: args for keyword, args in made if keyword != "ENV"}


def copies(service):
    """The (sources, destination) of each COPY into the service's image from the build context."""
    found = []
    for keyword, args in image(service):
        if keyword == "COPY" and "--from=" not in args:
            *sources, destination = [word for word in args.split() if not word.startswith("--")]
            found.append((sources, destination))
    return found


def the_service_check():
    """The last stage's RUN that checks SERVICE, after the stage declares the argument."""
    last = parse()[1][-1]
    runs = [i for i, (keyword, args) in enumerate(last.body) if keyword == "RUN" and "SERVICE" in args]
    assert len(runs) == 1, "the last stage (what a build without --target makes) must check SERVICE once"
    assert ("ARG", "SERVICE") in last.body[: runs[0]], "a RUN sees a build argument only once its stage declares it"
    return last.body[runs[0]][1]


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
def test_each_service_builds_its_image_from_the_one_dockerfile_and_waits_for_what_it_needs(service):
    spec = compose("compose.yml")["services"][service]
    assert spec["build"] == {"context": ".", "dockerfile": "Dockerfile", "args": {"SERVICE": service}}
    assert (ROOT / spec["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert spec["env_file"] == ".env"
    assert spec["ports"] == [f"127.0.0.1:{SERVICES[service]}:{SERVICES[service]}"]
    assert spec["environment"]["PORT"] == config(service)["ENV"]["PORT"] == str(SERVICES[service])
    assert spec["healthcheck"]["test"] == ["CMD", "python", "-m", "common.probe"]
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
        assert "build" not in overlay[service]  # the overlay builds nothing of its own: compose.yml does
    assert overlay["web"]["environment"]["PUBLIC_API_URL"] == "http://api.lvh.me"


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_service_keeps_a_dockerfile_of_its_own():
    assert sorted(path.relative_to(ROOT).as_posix() for path in ROOT.glob("*/Dockerfile")) == []


@pytest.mark.parametrize("service", SERVICES)
def test_the_service_argument_builds_that_services_stage_on_the_shared_runtime(service):
    chain, base = build(service)
    assert [stage.name for stage in chain] == ["runtime", service, "image"]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    # The other services' stages (and their files) are not part of this image.
    assert not {stage.name for stage in chain} & (set(SERVICES) - {service})


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_copies_exactly_its_own_package_and_sql_only_where_it_is_read(service):
    sources = [source for sources, _ in copies(service) for source in sources]
    expected = ["gunicorn.conf.py", "common/", f"{service}/"] + (["sql/"] if service in READS_SQL else [])
    assert sorted(sources) == sorted(expected)
    assert ("sql/" in sources) == (service in READS_SQL)
    assert not any(source in {".", "./", "*"} for source in sources)  # never `COPY . .`
    # Besides the context, only the deps stage's venv comes in.
    from_stages = [args for keyword, args in image(service) if keyword == "COPY" and "--from=" in args]
    assert from_stages == ["--from=deps /opt/venv /opt/venv"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_is_pinned_non_root_health_checked_and_runs_the_common_command(service):
    stages = parse()[1]
    for stage in stages:  # every image pulled, as opposed to a stage of this file or the SERVICE one
        if stage.base.lower() not in {s.name for s in stages} and "SERVICE" not in stage.base:
            assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", stage.base), stage.base
    final = config(service)
    assert final["USER"].split(":")[0].isdigit() and not final["USER"].startswith("0")
    assert json.loads(final["CMD"]) == gunicorn_command(service)
    assert final["HEALTHCHECK"].endswith('CMD ["python", "-m", "common.probe"]')
    assert final["ENV"]["PORT"] == final["EXPOSE"] == str(SERVICES[service])
    assert final["ENV"]["PATH"].startswith("/opt/venv/bin:")
    assert not any(keyword == "RUN" and "apt-get" in args for keyword, args in instructions())


def test_dependencies_are_wheels_from_the_pinned_file_in_a_layer_before_any_code():
    deps = next(stage for stage in parse()[1] if stage.name == "deps")
    assert [args for keyword, args in deps.body if keyword == "COPY"] == ["requirements.txt /tmp/requirements.txt"]
    install = [args for keyword, args in deps.body if keyword == "RUN" and "pip install" in args]
    assert len(install) == 1 and "--only-binary=:all:" in install[0] and "-r /tmp/requirements.txt" in install[0]
    runtime = next(stage for stage in parse()[1] if stage.name == "runtime")
    copied = [args for keyword, args in runtime.body if keyword == "COPY"]
    assert copied[0] == "--from=deps /opt/venv /opt/venv"  # the venv first: code changes keep its layer


def test_a_build_without_the_service_argument_stops_at_the_blank_from():
    preamble, stages = parse()
    # Declared before the first FROM with no default: nothing else can fill it in.
    assert preamble == [("ARG", "SERVICE")]
    assert stages[-1].base in {"${SERVICE}", "$SERVICE"}
    # Docker refuses a blank FROM ("base name (${SERVICE}) should not be blank") instead of building api.
    chain, base = build("")
    assert [stage.name for stage in chain] == ["image"] and base == ""
    # A name that is no stage would be pulled as an image: only the last stage's check stands in the way.
    chain, base = build("nginx")
    assert [stage.name for stage in chain] == ["image"] and base == "nginx"


def service_check(value):
    """Run the last stage's check as Docker would (`/bin/sh -c`), with SERVICE set to `value`."""
    env = {"PATH": os.environ["PATH"], "SERVICE": value}
    return subprocess.run(["/bin/sh", "-c", the_service_check()], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("value", ["", "nginx", "python", "API", "api web", "api;true", "sql", "runtime", "deps"])
def test_the_last_stage_refuses_any_other_service_argument(value):
    # Unknown names reach it in whatever image Docker pulled; "runtime" or "deps" would build an
    # image with no command; "API" names the api stage (stage names ignore case) but is refused too.
    check = service_check(value)
    assert check.returncode != 0 and "SERVICE must be api, orchestrator, preview or web" in check.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_the_last_stage_lets_each_service_through(service):
    check = service_check(service)
    assert check.returncode == 0, check.stderr


def test_every_path_the_dockerfile_copies_exists_and_no_secret_reaches_the_context():
    for keyword, args in instructions():
        if keyword == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".git", ".venv", ".data"} <= set(ignored)


def image_root(service, into):
    """Lay out `into` as the image's /app: exactly what its COPY lines put there."""
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
    expected = ["gunicorn.conf.py", "common", service] + (["sql"] if service in READS_SQL else [])
    assert sorted(p.name for p in app_dir.iterdir()) == sorted(expected)
    env = service_env(
        database_url,
        API_URL="http://127.0.0.1:9",  # the Preview Manager's upstream; /health does not ask it
        PUBLIC_API_URL="http://localhost:4000",
        PUBLIC_ORCHESTRATOR_URL="http://localhost:4001",
        PYTHONDONTWRITEBYTECODE="1",  # as in the image, whose /app the service cannot write
    )
    running = Service(service, env, tmp_path / "service.log", cwd=app_dir)
    check = [sys.executable, "-m", "common.probe"]  # the image's HEALTHCHECK
    try:
        running.start()  # the image's CMD (gunicorn_command), on the PORT it was given
        assert requests.get(f"{running.url}/health", timeout=5).json() == {"ok": True}
        healthy = subprocess.run(check, cwd=app_dir, env=running.env, capture_output=True, text=True)
        assert healthy.returncode == 0, healthy.stderr
    finally:
        running.stop()
    unhealthy = subprocess.run(check, cwd=app_dir, env=running.env, capture_output=True, text=True)
    assert unhealthy.returncode != 0 and "unhealthy" in unhealthy.stderr


def test_the_render_blueprint_builds_each_service_from_the_dockerfile_with_every_required_setting():
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    groups = {group["name"]: group["envVars"] for group in blueprint["envVarGroups"]}
    databases = {database["name"] for database in blueprint["databases"]}
    services = {spec["name"].removeprefix("oneshot-"): spec for spec in blueprint["services"]}
    assert set(services) == set(SERVICES)
    for service, spec in services.items():
        assert (spec["runtime"], spec["dockerContext"], spec["healthCheckPath"]) == ("docker", ".", "/health")
        assert (ROOT / spec["dockerfilePath"]).resolve() == DOCKERFILE
        # A Blueprint takes no build target: Render hands the service's variables to the build as
        # build arguments, so SERVICE, set on the service itself (a group is shared), picks the image.
        assert [var["value"] for var in spec["envVars"] if var.get("key") == "SERVICE"] == [service]
        provided = set()
        for entry in spec["envVars"]:
            for var in groups[entry["fromGroup"]] if "fromGroup" in entry else [entry]:
                assert "fromDatabase" not in var or var["fromDatabase"]["name"] in databases
                provided.add(var["key"])
        assert set(importlib.import_module(service).REQUIRED_SETTINGS) <= provided, service
    assert not any(var["key"] == "SERVICE" for group in groups.values() for var in group)
