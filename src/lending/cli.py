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
    # Binding the tables builds Piccolo's own engine too, which warns when the database cannot
    # be reached: imported here, after main() has quietened Piccolo's warnings.
    from lending import schema

    schema.configure(settings.database_url)
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

    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # nosec B104: compared for display, not bound
    print(
        f"lending is serving on http://{shown_host}:{args.port}/ (database: {_describe(settings)}); "
        "press Ctrl+C to stop.",
        flush=True,
    )
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
    from lending.members import organisations
    from lending.members import services as members

    settings = _settings()
    password = args.password
    if password is None and args.role != "member" and sys.stdin.isatty():
        password = getpass.getpass("Password (at least 10 characters): ")

    async def work() -> None:
        organisation = args.organisation
        if organisation and args.role == "link_worker" and not await organisations.find_organisation(name=organisation):
            created = await organisations.create_organisation(name=organisation)
            print(f"Created the referring organisation {created.name}.")
        account = await members.create_account(
            name=args.name,
            email=args.email,
            role=args.role,
            password=password,
            organisation=organisation,
            language=args.language,
        )
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
    from lending.workflows import demo

    settings = _settings()

    async def work() -> None:
        await demo.load(progress=lambda text: print(text, flush=True), force=args.force or settings.demo)

    return asyncio.run(_with_database(settings, work))


def cmd_reminders_send(args: argparse.Namespace) -> int:
    from lending.mail import services as mail
    from lending.mail.smtp import Mailer
    from lending.memberships import expiry

    settings = _settings()
    try:
        outgoing = Mailer.from_settings(settings)
    except ValueError as exc:
        raise CommandError(f"SMTP_URL: {exc}.") from exc

    async def work() -> None:
        from lending import i18n
        from lending.loans import reminders
        from lending.venues import services as venues

        venue = await venues.settings()
        i18n.set_time_zone(venue.timezone)  # dates and money in messages are the venue's
        i18n.set_currency(venue.currency)
        if args.dry_run:
            due = await expiry.queue_expiry_reminders(dry_run=True)
            lending = await reminders.queue_loan_reminders(dry_run=True)
            print(
                f"Would queue {_counted(due, 'membership expiry reminder')}, "
                f"{_counted(lending.due_soon, 'due-soon reminder')} and "
                f"{_counted(lending.overdue, 'overdue reminder')}; {await mail.waiting()} message(s) "
                "wait to be sent. Nothing was written or sent."
            )
            return
        expired = await expiry.expire_lapsed()
        queued = await expiry.queue_expiry_reminders()
        lending = await reminders.queue_loan_reminders()
        from lending.referrals import services as referrals

        lapsed, completed, erased = await referrals.sweep()
        sent = await mail.send_pending(mailer=outgoing)
        waiting = await mail.waiting()
        print(
            f"Marked {_counted(expired, 'lapsed membership')} expired; queued "
            f"{_counted(queued, 'membership expiry reminder')}, {_counted(lending.due_soon, 'due-soon reminder')} "
            f"and {_counted(lending.overdue, 'overdue reminder')}; passed on "
            f"{_counted(lending.holds_expired, 'uncollected hold')}; referrals: {lapsed} expired, {completed} "
            f"completed, {erased} erased; sent {_counted(sent, 'message')}."
        )
        if waiting:
            reason = "SMTP_URL is not set" if outgoing is None else "the mail server refused them or they failed"
            print(f"{_counted(waiting, 'message')} still wait to be sent ({reason}).", file=sys.stderr)

    return asyncio.run(_with_database(settings, work))


IMPORT_PROGRESS_EVERY = 500  # rows; smaller files import without progress lines
IMPORT_PROBLEMS_SHOWN = 50


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}" + ("" if count == 1 else "s")


def _read_csv(name: str) -> str:
    from pathlib import Path

    from lending.catalog import transfer

    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {name}: {exc.strerror or exc}.") from exc
    return transfer.decode(data)


def cmd_items_import(args: argparse.Namespace) -> int:
    from lending.catalog import transfer

    settings = _settings()
    text = _read_csv(args.file)
    shown = [0]

    def progress(done: int, total: int) -> None:
        if total >= IMPORT_PROGRESS_EVERY and (done // IMPORT_PROGRESS_EVERY > shown[0] or done == total):
            shown[0] = done // IMPORT_PROGRESS_EVERY
            print(f"Imported {done}/{total} rows", file=sys.stderr, flush=True)

    async def work() -> int:
        rows = transfer.count_rows(text)
        if rows >= IMPORT_PROGRESS_EVERY:
            print(f"Checking {rows} rows...", file=sys.stderr, flush=True)
        try:
            report = await transfer.import_items(
                text,
                dry_run=args.dry_run,
                create_categories=args.create_categories,
                keep_codes=args.keep_codes,
                progress=progress,
            )
        except transfer.ImportRejected as exc:
            print(f"lending: error: {exc.detail}", file=sys.stderr)
            for problem in exc.report.problems[:IMPORT_PROBLEMS_SHOWN]:
                print(problem, file=sys.stderr)
            if (more := len(exc.report.problems) - IMPORT_PROBLEMS_SHOWN) > 0:
                print(f"... and {more} more", file=sys.stderr)
            return EXIT_BAD_INPUT
        for warning in report.warnings[:IMPORT_PROBLEMS_SHOWN]:
            print(f"warning: {warning}", file=sys.stderr)
        if (more := len(report.warnings) - IMPORT_PROBLEMS_SHOWN) > 0:
            print(f"warning: ... and {more} more", file=sys.stderr)
        categories = ""
        if report.new_categories:
            verb = "to create" if args.dry_run else "created"
            categories = f"; categories {verb}: {', '.join(report.new_categories)}"
        if args.dry_run:
            print(
                f"{_counted(report.rows, 'row')} would be imported ({_counted(report.items, 'item')}){categories}. "
                "Nothing was written."
            )
        else:
            print(f"Imported {_counted(report.rows, 'row')} ({_counted(report.items, 'item')}){categories}.")
        return 0

    return asyncio.run(_with_database(settings, work))


def cmd_items_export(args: argparse.Namespace) -> int:
    from lending.catalog import transfer

    settings = _settings()

    async def work() -> None:
        text = await transfer.export_items()
        count = transfer.count_rows(text)
        if args.file == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            print(f"Exported {_counted(count, 'item')}.", file=sys.stderr)
            return
        # UTF-8 with a byte order mark, so Excel shows '£' and accents.
        _write_file(args.file, text.encode("utf-8-sig"))
        print(f"Exported {_counted(count, 'item')} to {args.file}.")

    return asyncio.run(_with_database(settings, work))


def _write_file(name: str, data: bytes) -> None:
    """Written aside, then moved into place, so a failure never leaves half a file."""
    from pathlib import Path

    path = Path(name)
    partial = path.with_name(f".{path.name}.part")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(f"Cannot write {name}: {exc.strerror or exc}.") from exc


def cmd_venue_export(args: argparse.Namespace) -> int:
    from lending.workflows import setup_file

    settings = _settings()

    async def work() -> None:
        document = await setup_file.export_setup(include_catalogue=args.catalogue)
        text = setup_file.dumps(document)
        what = (
            f"{len(document['categories'])} categor{'y' if len(document['categories']) == 1 else 'ies'}, "
            f"{_counted(len(document['membership_tiers']), 'membership tier')}, "
            f"{_counted(len(document['sites']), 'site')}"
            + (f", {_counted(len(document['catalogue']), 'thing')} in the catalogue" if args.catalogue else "")
        )
        if args.file == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
            print(f"Exported the setup: {what}.", file=sys.stderr)
            return
        _write_file(args.file, text.encode("utf-8"))
        print(f"Exported the setup of {document['venue']['name'] or 'this venue'} to {args.file}: {what}.")

    return asyncio.run(_with_database(settings, work))


def cmd_venue_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lending.workflows import setup_file

    settings = _settings()
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {args.file}: {exc.strerror or exc}.") from exc

    async def work() -> int:
        try:
            if args.check:
                checked = setup_file.check_text(data)
                print(
                    f"The setup file of {checked.venue.name} is good: {_counts(checked.counts)}. Nothing was written."
                )
                return 0
            result = await setup_file.import_text(data)
        except errors.InvalidInput as exc:
            print(f"lending: error: {exc.detail}", file=sys.stderr)
            for where, message in (exc.errors or {}).items():
                print(f"  {where}: {message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"Started {result.venue_name} from {args.file}: {_counts(result.counts)}.")
        return 0

    return asyncio.run(_with_database(settings, work))


_COUNTED = {
    "sites": ("site", "sites"),
    "membership_tiers": ("membership tier", "membership tiers"),
    "categories": ("category", "categories"),
    "agreements": ("agreement version", "agreement versions"),
    "email_templates": ("message template", "message templates"),
    "catalogue": ("thing to acquire", "things to acquire"),
}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} {_COUNTED[name][value != 1]}" for name, value in counts.items() if name in _COUNTED)


def _size(count: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError  # pragma: no cover


def _holding(contents) -> str:
    """'38 tables, 1,234 rows (9 accounts, 42 items, 7 loans)'."""
    shown = [
        _counted(contents.rows[table], noun)
        for table, noun in (("account", "account"), ("item", "item"), ("loan", "loan"))
        if table in contents.rows
    ]
    rows = f"{contents.total_rows:,} row" + ("" if contents.total_rows == 1 else "s")
    return f"{_counted(contents.tables, 'table')}, {rows}" + (f" ({', '.join(shown)})" if shown else "")


def _backup_work(work: Callable[[], Awaitable[object]]):
    """A backup or restore; a database or tool that fails is exit 1, not bad input."""
    try:
        return asyncio.run(work())
    except errors.Unavailable as exc:
        print(f"lending: error: {_one_line(exc)}", file=sys.stderr)
        return None


def cmd_backup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lending.workflows import backup

    settings = _settings()
    done = _backup_work(
        lambda: backup.write_backup(
            database_url=settings.database_url,
            target=Path(args.file),
            force=args.force,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
    )
    if done is None:
        return EXIT_FAILED
    print(f"Backed up {done.database} to {done.path}: {_size(done.size)}, {_holding(done.contents)}.")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lending.workflows import backup

    settings = _settings()
    done = _backup_work(
        lambda: backup.restore_backup(
            database_url=settings.database_url,
            source=Path(args.file),
            force=args.force,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
    )
    if done is None:
        return EXIT_FAILED
    print(
        f"Restored {done.path} into {done.database}: {_holding(done.contents)}. "
        "Migrations newer than the backup are applied when the app starts (or by `lending migrate`)."
    )
    return 0


# --- parsing --------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lending", description="Run a library of things.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    venue = commands.add_parser("venue", help="the venue's setup, as one file another venue can start from")
    venue_commands = venue.add_subparsers(dest="venue_command", required=True, parser_class=_Parser)
    venue_export = venue_commands.add_parser(
        "export", help="write the setup (no personal data) to FILE, or - for standard output"
    )
    venue_export.add_argument("file", metavar="FILE")
    venue_export.add_argument(
        "--catalogue",
        action="store_true",
        help="include the catalogue, as a list of things to acquire (no loan history)",
    )
    venue_export.set_defaults(handler=cmd_venue_export)
    venue_import = venue_commands.add_parser("import", help="start this (new, empty) venue from a setup FILE")
    venue_import.add_argument("file", metavar="FILE")
    venue_import.add_argument("--check", action="store_true", help="only check the file; write nothing")
    venue_import.set_defaults(handler=cmd_venue_import)

    run = commands.add_parser("run", help="apply pending migrations, then serve the app")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument("--workers", type=int, default=1)
    run.set_defaults(handler=cmd_run)

    commands.add_parser("migrate", help="apply pending migrations").set_defaults(handler=cmd_migrate)

    reminders = commands.add_parser("reminders", help="messages to members").add_subparsers(
        dest="reminders_command", required=True, parser_class=_Parser
    )
    send = reminders.add_parser(
        "send",
        help="expire lapsed memberships and uncollected holds, queue expiry, "
        "due-soon and overdue reminders and send what waits; each message "
        "goes once (run it from cron)",
    )
    send.add_argument("--dry-run", action="store_true", help="say what would be sent, change nothing")
    send.set_defaults(handler=cmd_reminders_send)

    demo = commands.add_parser("demo", help="load a demo venue and print its sign-ins (safe to run twice)")
    demo.add_argument(
        "--force", action="store_true", help="load demo accounts even though the database holds other accounts"
    )
    demo.set_defaults(handler=cmd_demo)

    user = commands.add_parser("user", help="manage accounts").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    create = user.add_parser("create", help="create an account")
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, help="member, volunteer, link_worker or coordinator")
    create.add_argument("--password", help="at least 10 characters; asked for when left out")
    create.add_argument("--organisation", help="the referring organisation of a link worker")
    create.add_argument("--language", default="en", choices=sorted(i18n.LANGUAGES))
    create.set_defaults(handler=cmd_user_create)

    token = commands.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    token_create = token.add_parser("create", help="print a new API token for a user")
    token_create.add_argument("--email", required=True)
    token_create.add_argument("--label", default="", help="what the token is for")
    token_create.set_defaults(handler=cmd_token_create)
    token_revoke = token.add_parser("revoke", help="revoke every API token of a user")
    token_revoke.add_argument("--email", required=True)
    token_revoke.set_defaults(handler=cmd_token_revoke)

    items = commands.add_parser("items", help="import and export the catalogue as CSV").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    items_import = items.add_parser("import", help="add the items in a CSV file: all of them, or none")
    items_import.add_argument("file", metavar="FILE", help='a CSV file (docs/catalogue-csv.md), or "-" for stdin')
    items_import.add_argument("--dry-run", action="store_true", help="check every row and report; write nothing")
    items_import.add_argument(
        "--create-categories", action="store_true", help="create the categories the file names that do not exist yet"
    )
    items_import.add_argument(
        "--keep-codes", action="store_true", help="let items keep codes from another catalogue that are not used here"
    )
    items_import.set_defaults(handler=cmd_items_import)
    items_export = items.add_parser("export", help="write every item to a CSV file")
    items_export.add_argument("file", metavar="FILE", help='the CSV file to write, or "-" for stdout')
    items_export.set_defaults(handler=cmd_items_export)

    backup = commands.add_parser(
        "backup", help="write a consistent copy of the database to FILE, also while the app runs (docs/deploy.md)"
    )
    backup.add_argument("file", metavar="FILE", help="the backup file to write, e.g. var/backups/lending.dump")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser(
        "restore", help="replace the database with a backup made by `lending backup` (stop the app first)"
    )
    restore.add_argument("file", metavar="FILE", help="a backup of the same kind of database (SQLite or PostgreSQL)")
    restore.add_argument("--force", action="store_true", help="replace a database that already holds accounts")
    restore.set_defaults(handler=cmd_restore)
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
