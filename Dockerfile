# The `lending` app in one small image: build the project into a virtualenv in one stage,
# copy only that virtualenv into a clean slim image, and run it as an unprivileged user.
#
#   docker build -t lending .
#   docker run --rm -p 8000:8000 -e SECRET_KEY=... -v lending-var:/app/var lending
#
# See docs/deploy.md for the docker compose setup with PostgreSQL.

# --- build: install the project (a real wheel, not editable) and its dependencies ------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
# Only what the wheel is built from. pyproject.toml force-includes templates/ and static/ as
# lending/templates and lending/static, and the migrations live in src/lending/piccolo_migrations,
# so all of them travel inside the installed package.
COPY pyproject.toml README.md ./
COPY src ./src
COPY admin ./admin
COPY templates ./templates
COPY static ./static

# `pip install .` builds a wheel with hatchling and installs it: nothing points back at /src.
# The check fails the build if the templates, static files or migrations were left out.
RUN /opt/venv/bin/pip install . \
 && cd / && /opt/venv/bin/python -c "from importlib.resources import files; \
pkg = files('lending'); \
assert all(pkg.joinpath(d).is_dir() for d in ('templates', 'static', 'piccolo_migrations')), 'package data missing'"

# --- runtime ------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="lending" \
      org.opencontainers.image.description="Run a library of things: QR-first lending, pay-what-you-can memberships and social-prescribing referrals." \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# pg_dump and pg_restore for `lending backup` and `lending restore` on PostgreSQL. They must be
# of the server's major version or newer: docker-compose.yml runs postgres:15, and Debian
# bookworm ships postgresql-client-15.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid so a bind-mounted var/ folder can be chowned to match (10001:10001).
# var/backups is where `lending backup` writes in the container (docs/deploy.md).
RUN groupadd --system --gid 10001 lending \
 && useradd --system --uid 10001 --gid lending --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin lending \
 && mkdir -p /app/var/backups \
 && chown -R lending:lending /app

COPY --from=build /opt/venv /opt/venv

# The default DATABASE_URL (sqlite:///var/lending.db) is relative to this folder, so without
# PostgreSQL the database, and uploads, land in /app/var: keep it on a volume.
WORKDIR /app
VOLUME ["/app/var"]

USER lending

EXPOSE 8000

# Slim images have no curl; Python's urllib raises on a 503, which fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# granian (behind `lending run`) handles SIGTERM and stops its workers cleanly.
STOPSIGNAL SIGTERM

# `lending run` applies any pending migrations before it serves.
CMD ["lending", "run", "--host", "0.0.0.0", "--port", "8000"]
