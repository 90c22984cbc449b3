"""The deployment files (Dockerfile, docker-compose.yml, .env.example, .dockerignore) agree with
the project: the commands they run exist, the image carries what the wheel is built from, the
start-up order holds, and every setting the app reads is explained to whoever deploys.

No Docker engine runs in the test environment, so these read the files rather than build them."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from lending.cli import build_parser

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
DOCS_DEPLOY = ROOT / "docs" / "deploy.md"

# Every environment variable the app reads (README.md, "Configuration").
CONTRACT_VARIABLES = [
    "DATABASE_URL",
    "SECRET_KEY",
    "BASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "SMTP_URL",
]
SLIM_BASE = "python:3.11-slim-bookworm"


# --- reading the files --------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each stage, each starting with its FROM."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def values(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for name, rest in stage if name == keyword]


def flags_and_args(text: str) -> tuple[list[str], list[str]]:
    tokens = shlex.split(text)
    return [t for t in tokens if t.startswith("--")], [t for t in tokens if not t.startswith("--")]


def pip_installs() -> list[list[str]]:
    """The arguments after ``pip install`` in every RUN of every stage."""
    found = []
    for name, command in dockerfile():
        if name != "RUN":
            continue
        for part in re.split(r"&&|\|\||;", command):
            try:
                tokens = shlex.split(part)
            except ValueError:  # a quoted python -c snippet split at its own ';'
                continue
            for index, token in enumerate(tokens[:-1]):
                # pip, /opt/venv/bin/pip, pip3, or the "pip" of python -m pip
                if token.rsplit("/", 1)[-1] in {"pip", "pip3"} and tokens[index + 1] == "install":
                    found.append(tokens[index + 2 :])
    return found


def lending_commands() -> list[list[str]]:
    """Every ``lending ...`` argv the deployment runs: compose ``command:`` entries and the image's CMD."""
    commands = []
    for service in services().values():
        command = service.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        if command and command[0] == "lending":
            commands.append(list(command))
    for cmd in values(final_stage(), "CMD"):
        argv = json.loads(cmd)  # exec form: a JSON array, so SIGTERM reaches the server itself
        if argv and argv[0] == "lending":
            commands.append(argv)
    return commands


def env_example_assigns(name: str, *, commented_ok: bool) -> bool:
    prefix = r"^\s*(#\s*)?" if commented_ok else r"^"
    return re.search(prefix + re.escape(name) + r"=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE) is not None


# --- docker-compose.yml -------------------------------------------------------------------------------


def test_compose_file_parses_and_has_the_db_the_migration_and_the_app():
    assert {"app", "db", "migrate"} <= set(services())


def test_db_is_postgres_with_a_pg_isready_healthcheck_and_a_named_volume():
    db = services()["db"]
    assert db["image"].startswith("postgres:15")
    test = db["healthcheck"]["test"]
    assert "pg_isready" in (test if isinstance(test, str) else " ".join(test))
    named = set(compose().get("volumes") or {})
    assert any(
        str(volume).split(":")[0] in named and str(volume).split(":")[1] == "/var/lib/postgresql/data"
        for volume in db["volumes"]
    )


def test_the_app_starts_after_a_healthy_db_and_a_finished_migration():
    depends_on = services()["app"]["depends_on"]
    assert depends_on["db"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_runs_once_on_the_app_image_after_the_db_is_healthy():
    migrate, app = services()["migrate"], services()["app"]
    assert migrate["command"] == ["lending", "migrate"]
    assert migrate["restart"] == "no"  # the string "no": a bare `no` is YAML's False
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate.get("image") == app.get("image") and migrate.get("build") == app.get("build")
    assert app.get("build") is not None


def test_app_and_migrate_read_the_env_file_and_reach_postgres_on_the_db_service():
    for name in ("app", "migrate"):
        service = services()[name]
        env_files = service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
        assert ".env" in [entry if isinstance(entry, str) else entry["path"] for entry in env_files]
        assert re.fullmatch(
            r"postgresql://lending:\$\{POSTGRES_PASSWORD[^}]*\}@db:5432/lending", service["environment"]["DATABASE_URL"]
        ), name


def test_the_app_has_a_healthcheck_on_health_without_curl():
    test = services()["app"]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert "http://127.0.0.1:8000/health" in text and "urllib" in text and "curl" not in text


def test_the_app_keeps_var_on_a_named_volume_and_publishes_port_8000():
    app = services()["app"]
    named = set(compose().get("volumes") or {})
    targets = {}
    for volume in app["volumes"]:
        if isinstance(volume, dict):
            targets[volume["target"]] = volume.get("source")
        else:
            source, target = str(volume).split(":")[:2]
            targets[target] = source
    assert targets.get("/app/var") in named
    assert any(str(port).endswith("8000:8000") for port in app["ports"])


# --- the commands -------------------------------------------------------------------------------------


def test_the_deployment_runs_the_server_and_the_migrations():
    subcommands = [argv[1] for argv in lending_commands() if len(argv) > 1]
    assert "migrate" in subcommands and "run" in subcommands


@pytest.mark.parametrize("argv", lending_commands(), ids=lambda argv: " ".join(argv))
def test_every_lending_command_is_a_real_cli_command(argv):
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"`{' '.join(argv)}` is not a command the CLI accepts (exit {exc.code})")
    assert callable(args.handler)


def test_the_server_listens_on_every_interface_on_port_8000():
    (cmd,) = values(final_stage(), "CMD")
    args = build_parser().parse_args(json.loads(cmd)[1:])
    assert (args.command, args.host, args.port) == ("run", "0.0.0.0", 8000)
    assert "8000" in values(final_stage(), "EXPOSE")[0].split()


# --- Dockerfile ---------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_slim_python():
    all_stages = stages()
    assert len(all_stages) >= 2
    names = set()
    for stage in all_stages:
        image, *rest = stage[0][1].split()
        assert image == SLIM_BASE or image in names, image
        if len(rest) == 2 and rest[0].upper() == "AS":
            names.add(rest[1])
    # The final image takes the built result from an earlier stage, not the sources.
    assert any("--from=" in copy for copy in values(final_stage(), "COPY"))


def test_dockerfile_runs_as_a_user_it_creates_who_is_not_root():
    stage = final_stage()
    users = values(stage, "USER")
    assert users, "the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    if not user.isdigit():
        created = [run for run in values(stage, "RUN") if re.search(r"\b(useradd|adduser)\b", run)]
        assert any(re.search(rf"\s{re.escape(user)}(\s|$)", run) for run in created), f"{user} is never created"


def test_dockerfile_has_a_healthcheck_on_health_without_curl():
    checks = values(final_stage(), "HEALTHCHECK")
    assert checks and checks[-1].upper() != "NONE"
    assert "http://127.0.0.1:8000/health" in checks[-1] and "urllib" in checks[-1] and "curl" not in checks[-1]


def test_dockerfile_stops_with_sigterm_and_keeps_var_writable():
    stage = final_stage()
    assert values(stage, "STOPSIGNAL") == ["SIGTERM"]
    assert values(stage, "WORKDIR")[-1] == "/app"  # the default sqlite:///var/lending.db lands in /app/var
    assert any("/app/var" in volume for volume in values(stage, "VOLUME"))
    assert any("mkdir" in run and "/app/var" in run and "chown" in run for run in values(stage, "RUN"))


def test_dockerfile_installs_the_project_itself_not_editable():
    installs = pip_installs()
    assert installs, "no pip install in the Dockerfile"
    for arguments in installs:
        assert not any(a in {"-e", "--editable"} or a.startswith("--editable=") for a in arguments), arguments
    assert any("." in [a for a in arguments if not a.startswith("-")] for arguments in installs)


def test_dockerfile_copies_everything_the_wheel_is_built_from():
    """pyproject.toml packs src/lending and admin, and force-includes templates/ and static/;
    a build stage without one of them fails, or ships an app without its pages."""
    project = tomllib.loads(PYPROJECT.read_text())
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], *wheel["packages"], *wheel["force-include"]}
    copied = set()
    for copy in values(stages()[0], "COPY"):
        _, paths = flags_and_args(copy)
        copied.update(path.rstrip("/").removeprefix("./") or "." for path in paths[:-1])
    for path in needed:
        assert "." in copied or any(path == source or path.startswith(source + "/") for source in copied), path


def test_the_runtime_image_has_pg_dump_of_the_servers_version_or_newer():
    """`lending backup` and `lending restore` run pg_dump and pg_restore in the app container;
    pg_dump refuses a server newer than itself."""
    server = int(re.match(r"postgres:(\d+)", services()["db"]["image"]).group(1))
    installs = [run for run in values(final_stage(), "RUN") if re.search(r"\bpostgresql-client-\d+\b", run)]
    assert installs, "the runtime stage installs no postgresql-client"
    for run in installs:
        assert min(int(v) for v in re.findall(r"\bpostgresql-client-(\d+)\b", run)) >= server, run
        assert "apt-get update" in run and "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists" in run


def test_the_image_has_the_folder_the_backup_docs_write_to():
    assert "/app/var/backups" in DOCS_DEPLOY.read_text()
    assert any("mkdir" in run and "/app/var/backups" in run and "chown" in run for run in values(final_stage(), "RUN"))


# --- .env.example and .dockerignore -------------------------------------------------------------------


@pytest.mark.parametrize("name", CONTRACT_VARIABLES)
def test_env_example_explains_every_contract_variable(name):
    assert env_example_assigns(name, commented_ok=True), f"{name} is missing from .env.example"


def test_env_example_sets_every_variable_the_compose_file_needs():
    needed = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    assert "POSTGRES_PASSWORD" in needed
    for name in needed:
        assert env_example_assigns(name, commented_ok=False), f"docker-compose.yml uses {name}; .env.example lacks it"


def test_env_example_ships_no_secret_value():
    text = ENV_EXAMPLE.read_text()
    for name in ("SECRET_KEY", "POSTGRES_PASSWORD", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
        assert re.search(rf"^{name}=\s*$", text, flags=re.MULTILINE), f"{name} must be left empty in .env.example"
    assert "secrets.token_urlsafe" in text  # how to make a SECRET_KEY


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line.strip("/").removeprefix("**/") for line in lines if line and not line.startswith(("#", "!"))]


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image():
    patterns = dockerignore_patterns()
    for name in (".venv", "var", ".git", "__pycache__", ".pytest_cache", ".env"):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_dockerignore_keeps_the_build_inputs():
    for copy in values(stages()[0], "COPY"):
        _, paths = flags_and_args(copy)
        for path in paths[:-1]:
            name = path.rstrip("/").removeprefix("./")
            assert not any(fnmatch.fnmatch(name, pattern) for pattern in dockerignore_patterns()), name
