"""The ``lending`` command. Every command reads the same environment as the server and
ends bad input with one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import warnings
from collections.abc import Awaitable, Callable

from lending import db, errors, i18n
from lending.settings import Settings, SettingsError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CommandError(Exception):
    """A problem with what the person asked for, said in one line."""


def _settings(*, serving: bool = False) -> Settings:
    return Settings.from_env(serving=serving)


async def _with_database(settings: Settings, work: Callable[[], Awaitable[int | None]]) -> int:
    db.configure(settings.database_url)
    await db.start()
    try:
        await db.migrate()
        return (await work()) or 0
    finally:
        await db.stop()


# --- commands -------------------------------------------------------------------------------------

def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings()

    async def work() -> None:
        print("Migrations are up to date.")

    return asyncio.run(_with_database(settings, work))


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(serving=True)
    if args.workers < 1:
        raise CommandError("--workers must be 1 or more.")
    if not 0 < args.port < 65536:
        raise CommandError("--port must be between 1 and 65535.")

    async def work() -> None:
        return None

    asyncio.run(_with_database(settings, work))
    from granian import Granian
    from granian.constants import Interfaces

    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"lending is serving on http://{shown_host}:{args.port}/ (database: {_describe(settings)}); "
          "press Ctrl+C to stop.", flush=True)
    Granian(
        "lending.app:create_app_from_env",
        address=args.host,
        port=args.port,
        workers=args.workers,
        interface=Interfaces.ASGI,
        factory=True,
        log_access=False,
        websockets=False,
    ).serve()
    return 0


def _describe(settings: Settings) -> str:
    if settings.is_postgres:
        return "PostgreSQL"
    return f"SQLite {settings.database_url.split('sqlite:///', 1)[1]}"


def cmd_user_create(args: argparse.Namespace) -> int:
    from lending.members import services as members
    from lending.referrals import services as referrals

    settings = _settings()
    password = args.password
    if password is None and args.role != "member" and sys.stdin.isatty():
        password = getpass.getpass("Password (at least 10 characters): ")

    async def work() -> None:
        organisation = args.organisation
        if organisation and args.role == "link_worker" and not await referrals.find_organisation(name=organisation):
            created = await referrals.create_organisation(name=organisation)
            print(f"Created the referring organisation {created.name}.")
        account = await members.create_account(name=args.name, email=args.email, role=args.role, password=password,
                                               organisation=organisation, language=args.language)
        print(f"Created {account.role} {account.name} <{account.email or '-'}>, card {account.card_code}.")

    return asyncio.run(_with_database(settings, work))


def cmd_token_create(args: argparse.Namespace) -> int:
    from lending.members import services as members

    settings = _settings()

    async def work() -> None:
        account = await members.account_by_email(email=args.email)
        print(await members.create_api_token(account_id=account.id, label=args.label))

    return asyncio.run(_with_database(settings, work))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from lending.members import services as members

    settings = _settings()

    async def work() -> None:
        account = await members.account_by_email(email=args.email)
        count = await members.revoke_api_tokens(account_id=account.id)
        print(f"Revoked {count} API token(s) of {account.email}.")

    return asyncio.run(_with_database(settings, work))


def cmd_demo(args: argparse.Namespace) -> int:
    from lending import demo

    settings = _settings()

    async def work() -> None:
        await demo.load(progress=lambda text: print(text, flush=True), force=args.force or settings.demo)

    return asyncio.run(_with_database(settings, work))


# --- parsing --------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lending", description="Run a library of things.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="apply pending migrations, then serve the app")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument("--workers", type=int, default=1)
    run.set_defaults(handler=cmd_run)

    commands.add_parser("migrate", help="apply pending migrations").set_defaults(handler=cmd_migrate)

    demo = commands.add_parser("demo", help="load a demo venue and print its sign-ins (safe to run twice)")
    demo.add_argument("--force", action="store_true",
                      help="load demo accounts even though the database holds other accounts")
    demo.set_defaults(handler=cmd_demo)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(dest="action", required=True,
                                                                               parser_class=_Parser)
    create = user.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, help="member, volunteer, link_worker or coordinator")
    create.add_argument("--password", help="at least 10 characters; asked for when left out")
    create.add_argument("--organisation", help="the referring organisation of a link worker")
    create.add_argument("--language", default="en", choices=sorted(i18n.LANGUAGES))
    create.set_defaults(handler=cmd_user_create)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(dest="action", required=True,
                                                                                   parser_class=_Parser)
    token_create = token.add_parser("create", help="print a new API token for a user")
    token_create.add_argument("--email", required=True)
    token_create.add_argument("--label", default="", help="what the token is for")
    token_create.set_defaults(handler=cmd_token_create)
    token_revoke = token.add_parser("revoke", help="revoke every API token of a user")
    token_revoke.add_argument("--email", required=True)
    token_revoke.set_defaults(handler=cmd_token_revoke)
    return parser


def _one_line(exc: errors.DomainError) -> str:
    text = str(exc.detail)
    extra = [f"{field}: {message}" for field, message in exc.errors.items() if str(message) != text]
    if extra:
        text += " " + " ".join(extra)
    return text


def main(argv: list[str] | None = None) -> int:
    # Piccolo prints multi-line warnings (e.g. when the database is unreachable); the
    # command says what went wrong in its own one line instead.
    warnings.filterwarnings("ignore", module="piccolo")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SettingsError as exc:
        print(f"lending: configuration error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CommandError, errors.InvalidInput, errors.Conflict, errors.NotFound, errors.RuleViolation) as exc:
        message = _one_line(exc) if isinstance(exc, errors.DomainError) else str(exc)
        print(f"lending: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the database is down, a disk is full...: one line, unless debugging
        if os.environ.get("LENDING_DEBUG"):
            raise
        print(f"lending: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
