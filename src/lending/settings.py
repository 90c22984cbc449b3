"""Configuration, read once from environment variables (README.md, "Configuration")."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from lending import sqlite_engine

DEFAULT_DATABASE_URL = "sqlite:///var/lending.db"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(Exception):
    """A configuration problem, explained in one line for the person starting the app."""


def _flag(environ: os._Environ[str] | dict[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    base_url: str
    debug: bool
    demo: bool
    stripe_secret_key: str
    stripe_webhook_secret: str
    stripe_api_base: str
    smtp_url: str
    default_language: str = "en"
    # Reverse proxies and load balancers whose X-Forwarded-For is believed (web/clients.py).
    trusted_proxies: tuple[Network, ...] = ()

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://", "postgresql+"))

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, *, serving: bool = True) -> Settings:
        """``serving=False`` is for commands that sign no cookies and so need no SECRET_KEY."""
        env = dict(os.environ if environ is None else environ)
        debug = _flag(env, "LENDING_DEBUG")
        demo = _flag(env, "LENDING_DEMO")
        database_url = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        if not database_url.startswith(("sqlite://", "postgres://", "postgresql://", "postgresql+")):
            raise SettingsError(
                f"DATABASE_URL must start with sqlite:/// or postgresql://, not {database_url.split(':', 1)[0]!r}."
            )
        for setting in (sqlite_engine.engine_kind, sqlite_engine.reader_count):
            try:
                setting(env)
            except ValueError as error:
                raise SettingsError(f"{error}.") from None
        secret_key = env.get("SECRET_KEY", "").strip()
        if not secret_key:
            if serving and not (debug or demo):
                raise SettingsError(
                    "SECRET_KEY is not set: set it to a long random string "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                    "or set LENDING_DEMO=1 to try the app with demo data."
                )
            secret_key = _local_secret(database_url)
        elif serving and len(secret_key) < 32 and not (debug or demo):
            raise SettingsError("SECRET_KEY is too short: use at least 32 random characters.")
        return cls(
            database_url=database_url,
            secret_key=secret_key,
            base_url=(env.get("BASE_URL", "").strip() or "http://127.0.0.1:8000").rstrip("/"),
            debug=debug,
            demo=demo,
            stripe_secret_key=env.get("STRIPE_SECRET_KEY", ""),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            stripe_api_base=env.get("STRIPE_API_BASE", ""),
            smtp_url=env.get("SMTP_URL", ""),
            trusted_proxies=trusted_proxies(env.get("TRUSTED_PROXIES", "")),
        )


def trusted_proxies(text: str) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``: addresses or networks (``127.0.0.1``, ``10.0.0.0/8``, ``::1``),
    separated by commas; empty trusts no proxy."""
    networks = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(
                f"TRUSTED_PROXIES: {part!r} is not an IP address or network "
                "(write them like 127.0.0.1, 10.0.0.0/8, separated by commas)."
            ) from None
    return tuple(networks)


def sqlite_path(database_url: str) -> Path:
    """The file behind a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    path = database_url.split("sqlite://", 1)[1]
    if path.startswith("/"):
        path = path[1:]
    return Path(path)


def _local_secret(database_url: str) -> str:
    """In demo/debug mode, a secret kept beside the database so every process on this
    machine signs cookies alike; it is never used when SECRET_KEY is set."""
    folder = sqlite_path(database_url).parent if database_url.startswith("sqlite") else Path("var")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".demo-secret-key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
