# One recipe for the four images. Build from the repository root, naming the service:
#   docker build --build-arg SERVICE=api -t oneshot-api .     (or orchestrator, preview, web)
# SERVICE is required: without it the final FROM has no base and the build stops; any other value
# than the four is refused by the check in the last stage. Each image runs the same command as
# everywhere else, gunicorn -c gunicorn.conf.py <service>.wsgi:app on $PORT.
ARG SERVICE

FROM python:3.11.14-slim-bookworm AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Only the pinned requirements: this layer is rebuilt when they change, not when the code does.
COPY requirements.txt /tmp/requirements.txt
# Wheels only: a package that would need a compiler fails the build instead of pulling one in.
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# What every image shares: the venv and common/, no compiler, no pip cache, no requirements file.
FROM python:3.11.14-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 oneshot \
 && useradd --system --uid 10001 --gid oneshot --no-create-home --shell /usr/sbin/nologin oneshot
WORKDIR /app
COPY --from=deps /opt/venv /opt/venv
COPY gunicorn.conf.py ./
COPY common/ common/
# Numeric, so a runtime's runAsNonRoot check can verify it without reading /etc/passwd.
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["python", "-m", "common.probe"]

# One stage per service: its own package, sql/ only where it reads the database, its port.
FROM runtime AS api
ENV PORT=4000
COPY sql/ sql/
COPY api/ api/
EXPOSE 4000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api.wsgi:app"]

FROM runtime AS orchestrator
ENV PORT=4001
COPY sql/ sql/
COPY orchestrator/ orchestrator/
EXPOSE 4001
CMD ["gunicorn", "-c", "gunicorn.conf.py", "orchestrator.wsgi:app"]

FROM runtime AS preview
ENV PORT=4002
COPY preview/ preview/
EXPOSE 4002
CMD ["gunicorn", "-c", "gunicorn.conf.py", "preview.wsgi:app"]

FROM runtime AS web
ENV PORT=3000
COPY web/ web/
EXPOSE 3000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "web.wsgi:app"]

# The image: the stage SERVICE names (a build argument, so that Render and Railway, which pass a
# service's variables to the build but take no target, can choose it too). A name that is no stage
# here would be pulled as an image from a registry instead: the check below refuses it.
FROM ${SERVICE} AS image
ARG SERVICE
RUN case "$SERVICE" in api|orchestrator|preview|web) ;; *) echo "SERVICE must be api, orchestrator, preview or web, not '$SERVICE'" >&2; exit 1 ;; esac
