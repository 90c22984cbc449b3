"""Backups of the whole database, and restoring one: ``lending backup FILE`` and
``lending restore FILE``.

Decisions:

* SQLite: Python's ``sqlite3`` backup API copies the live database in one step, inside one read
  transaction, so the copy is the database as it was at one moment even while the app writes (in
  WAL mode writers carry on meanwhile). The copy is switched out of WAL mode, so the backup is one
  self-contained file. Restoring uses the same API the other way round: the destination is
  replaced inside one write transaction, so a failed restore leaves it as it was.
* PostgreSQL: ``pg_dump --format=custom`` (the format ``pg_restore`` reads, compressed, with
  each table restorable on its own), without owners or privileges, so a backup restores into a
  database with another owner. Rows are counted in a repeatable-read transaction whose snapshot
  ``pg_dump`` is then given (``--snapshot``), so the counts shown are those of the backup.
  Restoring runs ``pg_restore --clean --if-exists --single-transaction``: all of it, or nothing.
* A backup is written to a hidden temporary file beside FILE and renamed when complete, so a
  failed or interrupted backup never leaves a file that looks like a good one. It is readable by
  its owner only (0600): it holds every member's personal data.
* A password in DATABASE_URL reaches ``pg_dump``/``pg_restore`` through ``PGPASSWORD``, never
  on their command line (where ``ps`` shows it) nor in a message.
* Nothing here migrates: a backup is the database as it is, and a restored one is the backup as
  it was, so an older version of the app can be put back with its own backup.

Messages are for the person at the command line (English, one line each), raised as domain
errors: ``InvalidInput``/``Conflict`` for what they asked, ``Unavailable`` when the database or
the PostgreSQL tools fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from lending import errors
from lending.db import normalise_postgres_url
from lending.settings import sqlite_path

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
SQLITE_BUSY_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10
# Tables every lending database has: a file without them is some other program's database.
LENDING_TABLES = frozenset({"account", "migration"})
PG_CLIENT_HINT = "install the PostgreSQL client tools of the server's version (Debian: postgresql-client-15)"


@dataclass(frozen=True)
class Contents:
    """What a database or backup holds: rows per table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def tables(self) -> int:
        return len(self.rows)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class Done:
    """A backup written, or a backup restored."""

    path: Path
    size: int
    database: str  # "the PostgreSQL database" or "the SQLite database var/lending.db"
    contents: Contents


# --- the command's two verbs -------------------------------------------------------------------------


async def write_backup(
    *, database_url: str, target: Path, force: bool = False, progress: Callable[[str], None] | None = None
) -> Done:
    """A consistent copy of the database at ``target``; an existing file is replaced only with
    ``force``, and only once the new backup is complete."""
    _check_target(target, force=force)
    postgres = _is_postgres(database_url)
    pg_dump = _tool("pg_dump") if postgres else ""
    source = None if postgres else _existing_sqlite(database_url)

    def starting() -> None:  # once the database has answered
        if progress:
            progress(f"Backing up {_describe(database_url)} to {target}...")

    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise errors.InvalidInput(f"Cannot write in {target.parent}: {exc.strerror or exc}.") from exc
    os.close(fd)
    partial = Path(name)
    try:
        if source is None:
            contents = await _postgres_backup(database_url, partial, pg_dump, starting)
        else:
            contents = await asyncio.to_thread(_sqlite_backup, source, partial, starting)
        _fsync(partial)
        if target.exists() and not force:  # made meanwhile by someone else
            raise _target_exists(target)
        os.replace(partial, target)
        _fsync(target.parent)
    except OSError as exc:
        raise errors.Unavailable(f"Cannot write {target}: {exc.strerror or exc}.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return Done(path=target, size=target.stat().st_size, database=_describe(database_url), contents=contents)


async def restore_backup(
    *, database_url: str, source: Path, force: bool = False, progress: Callable[[str], None] | None = None
) -> Done:
    """Replace the database with a backup of the same kind. A database that holds accounts is
    replaced only with ``force``; a backup that is damaged, cut short or of the other kind of
    database is refused before anything is changed."""
    kind = backup_kind(source)
    postgres = _is_postgres(database_url)
    if kind == "sqlite" and postgres:
        raise errors.InvalidInput(
            f"{source} is a backup of a SQLite database, but DATABASE_URL names a PostgreSQL database: "
            "restore it where DATABASE_URL is sqlite:///...",
            code="wrong_kind_of_backup",
        )
    if kind == "postgres" and not postgres:
        raise errors.InvalidInput(
            f"{source} is a PostgreSQL backup (pg_dump custom format), but DATABASE_URL names a SQLite "
            "database: restore it where DATABASE_URL is postgresql://...",
            code="wrong_kind_of_backup",
        )

    def starting() -> None:  # once every check has passed
        if progress:
            progress(f"Restoring {source} into {_describe(database_url)}...")

    if postgres:
        contents = await _postgres_restore(database_url, source, force=force, starting=starting)
    else:
        contents = await asyncio.to_thread(_sqlite_restore, database_url, source, force, starting)
    return Done(path=source, size=source.stat().st_size, database=_describe(database_url), contents=contents)


def backup_kind(path: Path) -> str:
    """``"sqlite"`` or ``"postgres"``, from the file's first bytes; anything else is refused
    with what it seems to be instead."""
    if path.is_dir():
        raise errors.InvalidInput(f"{path} is a folder, not a backup file.")
    try:
        with path.open("rb") as handle:
            head = handle.read(100)
    except FileNotFoundError as exc:
        raise errors.NotFound(f"{path} does not exist.") from exc
    except OSError as exc:
        raise errors.InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgres"
    if not head:
        raise errors.InvalidInput(f"{path} is empty, not a backup.", code="not_a_backup")
    if head.startswith(b"\x1f\x8b"):
        raise errors.InvalidInput(
            f"{path} is compressed with gzip: gunzip it, then restore the file that gives.", code="not_a_backup"
        )
    if b"PostgreSQL database dump" in head:
        raise errors.InvalidInput(
            f"{path} is a plain-text SQL dump, not a backup made by `lending backup` (restore that kind with psql).",
            code="not_a_backup",
        )
    raise errors.InvalidInput(
        f"{path} is not a backup made by `lending backup`: it is neither a SQLite database "
        "nor a PostgreSQL custom-format dump.",
        code="not_a_backup",
    )


# --- files ---------------------------------------------------------------------------------------------


def _check_target(target: Path, *, force: bool) -> None:
    if target.is_dir():
        raise errors.InvalidInput(
            f"{target} is a folder: name the backup file to write in it, e.g. {target / 'lending.dump'}."
        )
    if not target.parent.is_dir():
        raise errors.InvalidInput(f"The folder {target.parent} does not exist: create it first.")
    if target.exists() and not force:
        raise _target_exists(target)


def _target_exists(target: Path) -> errors.Conflict:
    return errors.Conflict(
        f"{target} already exists: choose another name, or add --force to replace it.", code="backup_exists"
    )


def _fsync(path: Path) -> None:
    """Make the backup (or the rename into place) durable before saying it is written."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a folder
            os.fsync(fd)
    finally:
        os.close(fd)


def _describe(database_url: str) -> str:
    if _is_postgres(database_url):
        return "the PostgreSQL database"
    return f"the SQLite database {sqlite_path(database_url)}"


def _is_postgres(database_url: str) -> bool:
    return not database_url.startswith("sqlite:")


def _one_line(text: object) -> str:
    return " ".join(str(text).split()).rstrip(".")


# --- SQLite --------------------------------------------------------------------------------------------


def _existing_sqlite(database_url: str) -> Path:
    path = sqlite_path(database_url)
    if not path.is_file():
        raise errors.Unavailable(f"There is no SQLite database at {path} (DATABASE_URL).", code="no_database")
    return path


def _connect_sqlite(path: Path, *, read_only_file: bool = False) -> sqlite3.Connection:
    """``read_only_file`` opens a backup without writing beside it (no -wal or -shm files)."""
    options = "mode=ro&immutable=1" if read_only_file else "mode=rw"
    return sqlite3.connect(f"{path.absolute().as_uri()}?{options}", uri=True, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)


def _sqlite_contents(connection: sqlite3.Connection) -> Contents:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
        )
    ]
    quoted = {name: '"' + name.replace('"', '""') + '"' for name in names}
    return Contents(
        {
            name: connection.execute(f"SELECT count(*) FROM {quoted[name]}").fetchone()[0]  # nosec B608: names from sqlite_master, quoted
            for name in names
        }
    )


def _sqlite_backup(source: Path, partial: Path, starting: Callable[[], None]) -> Contents:
    try:
        live = _connect_sqlite(source)
    except sqlite3.Error as exc:
        raise errors.Unavailable(f"Cannot open the SQLite database {source}: {_one_line(exc)}.") from exc
    starting()
    try:
        copy = sqlite3.connect(partial)
        try:
            # One step (pages=-1): one read transaction, so one moment of the database.
            live.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # the copy took the source's WAL flag
            if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise errors.Unavailable(f"The SQLite database {source} is damaged; the backup was not written.")
            contents = _sqlite_contents(copy)
        finally:
            copy.close()
    except sqlite3.DatabaseError as exc:
        raise errors.Unavailable(f"Cannot back up the SQLite database {source}: {_one_line(exc)}.") from exc
    finally:
        live.close()
    return contents


def _check_sqlite_backup(path: Path) -> None:
    """Cut short, damaged, or not ours: say which before anything is replaced."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100:
        raise _incomplete(path)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid when its version number matches the change counter.
    if header[92:96] == header[24:28] and pages and size < pages * page_size:
        raise _incomplete(path)
    try:
        connection = _connect_sqlite(path, read_only_file=True)
        try:
            check = [row[0] for row in connection.execute("PRAGMA quick_check")]
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise errors.InvalidInput(
            f"{path} is damaged ({_one_line(exc)}); nothing was restored.", code="damaged_backup"
        ) from exc
    if check != ["ok"]:
        raise errors.InvalidInput(
            f"{path} is damaged ({_one_line(check[0])}); nothing was restored.", code="damaged_backup"
        )
    if not LENDING_TABLES <= names:
        raise errors.InvalidInput(f"{path} is a SQLite database, but not a backup of lending.", code="not_a_backup")


def _incomplete(path: Path) -> errors.InvalidInput:
    return errors.InvalidInput(
        f"{path} is incomplete (cut short while it was written or copied); nothing was restored.", code="damaged_backup"
    )


def _sqlite_accounts(path: Path) -> int:
    try:
        connection = _connect_sqlite(path)
        try:
            found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'account'")
            if not found.fetchone():
                return 0
            return connection.execute("SELECT count(*) FROM account").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise errors.InvalidInput(
            f"DATABASE_URL names {path}, which is not a SQLite database ({_one_line(exc)}); nothing was restored."
        ) from exc


def _sqlite_restore(database_url: str, source: Path, force: bool, starting: Callable[[], None]) -> Contents:
    _check_sqlite_backup(source)
    target = sqlite_path(database_url)
    existed = target.exists()
    if existed:
        if target.samefile(source):
            raise errors.InvalidInput(f"{source} is the database itself (DATABASE_URL), not a backup of it.")
        accounts = _sqlite_accounts(target)
        if accounts and not force:
            raise _holds_accounts(f"The SQLite database {target}", accounts)
    target.parent.mkdir(parents=True, exist_ok=True)
    starting()
    try:
        backup = _connect_sqlite(source, read_only_file=True)
        try:
            live = sqlite3.connect(target, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
            try:
                # Out of WAL mode first: the backup API cannot write a WAL database whose page
                # size differs; the app turns WAL back on, and so do we below.
                live.execute("PRAGMA journal_mode=DELETE")
                backup.backup(live)  # one write transaction: all of it, or nothing
                live.execute("PRAGMA journal_mode=WAL")
                contents = _sqlite_contents(live)
            finally:
                live.close()
        finally:
            backup.close()
    except sqlite3.Error as exc:
        if not existed:
            target.unlink(missing_ok=True)
        hint = "; is the app still running?" if "locked" in str(exc) else ""
        raise errors.Unavailable(
            f"Could not restore into {target} ({_one_line(exc)}{hint}); nothing was changed."
        ) from exc
    return contents


def _holds_accounts(what: str, accounts: int) -> errors.Conflict:
    return errors.Conflict(
        f"{what} already holds {accounts} account{'s' if accounts != 1 else ''}: restoring "
        "would replace everything in it. Stop the app, then add --force to replace it.",
        code="database_not_empty",
    )


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise errors.Unavailable(f"{name} is not installed: {PG_CLIENT_HINT}.", code="tool_missing")
    return found


def _postgres_dsn(database_url: str) -> tuple[str, str | None]:
    """The URL for libpq without its password, and the password (for PGPASSWORD)."""

    parts = urlsplit(normalise_postgres_url(database_url))
    if "@" not in parts.netloc:
        return urlunsplit(parts), None
    credentials, host = parts.netloc.rsplit("@", 1)
    user, colon, password = credentials.partition(":")
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(password) if colon else None)


def _tool_env(password: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return env


async def _connect_postgres(database_url: str):
    import asyncpg

    try:
        return await asyncpg.connect(normalise_postgres_url(database_url), timeout=CONNECT_TIMEOUT_SECONDS)
    except Exception as exc:  # refused, unknown host, no such database, wrong password, timeout...
        raise errors.Unavailable(
            f"Cannot reach the PostgreSQL database: {_one_line(exc) or type(exc).__name__}.",
            code="database_unreachable",
        ) from exc


async def _postgres_tables(connection) -> list[str]:
    return [
        row["relname"]
        for row in await connection.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() ORDER BY c.relname"
        )
    ]


async def _postgres_contents(connection) -> Contents:
    rows = {}
    for name in await _postgres_tables(connection):
        quoted = '"' + name.replace('"', '""') + '"'
        rows[name] = await connection.fetchval(f"SELECT count(*) FROM {quoted}")  # nosec B608: names from pg_class, quoted
    return Contents(rows)


async def _run_tool(argv: list[str], *, password: str | None) -> tuple[int, str, str]:
    """Run pg_dump or pg_restore: its exit status, and what it printed on stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_tool_env(password),
    )
    try:
        stdout, stderr = await process.communicate()
    except BaseException:  # interrupted: do not leave it writing
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await asyncio.shield(process.wait())
        raise
    return process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


def _tool_problem(stderr: str) -> str:
    """The line that says what went wrong (pg_dump prints ``pg_dump: error: ...``)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next((line for line in lines if "error:" in line), lines[0] if lines else "no message")
    if "version mismatch" in stderr:
        chosen += f" ({PG_CLIENT_HINT})"
    return _one_line(chosen)


async def _postgres_backup(database_url: str, partial: Path, pg_dump: str, starting: Callable[[], None]) -> Contents:
    dsn, password = _postgres_dsn(database_url)
    connection = await _connect_postgres(database_url)
    starting()
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("SELECT pg_export_snapshot()")
            contents = await _postgres_contents(connection)
            status, _, stderr = await _run_tool(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    "--no-password",
                    f"--snapshot={snapshot}",
                    f"--file={partial}",
                    f"--dbname={dsn}",
                ],
                password=password,
            )
    finally:
        await connection.close()
    if status != 0:
        raise errors.Unavailable(
            f"pg_dump failed, so no backup was written: {_tool_problem(stderr)}.", code="backup_failed"
        )
    return contents


TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")


async def _postgres_restore(database_url: str, source: Path, *, force: bool, starting: Callable[[], None]) -> Contents:
    pg_restore = _tool("pg_restore")
    # Read the whole file first (into nothing): a damaged or cut-short backup is refused here,
    # before the database is touched.
    status, listing, stderr = await _run_tool([pg_restore, "--list", str(source)], password=None)
    if status == 0:
        status, _, stderr = await _run_tool([pg_restore, f"--file={os.devnull}", str(source)], password=None)
    if status != 0:
        raise errors.InvalidInput(
            f"{source} is damaged or incomplete ({_tool_problem(stderr)}); nothing was restored.", code="damaged_backup"
        )
    in_backup = {match.group(2) for line in listing.splitlines() if (match := TOC_TABLE.match(line))}
    if not LENDING_TABLES <= in_backup:
        raise errors.InvalidInput(f"{source} is a PostgreSQL backup, but not of lending.", code="not_a_backup")

    connection = await _connect_postgres(database_url)
    try:
        present = set(await _postgres_tables(connection))
        accounts = await connection.fetchval("SELECT count(*) FROM account") if "account" in present else 0
    finally:
        await connection.close()
    if accounts and not force:
        raise _holds_accounts("The PostgreSQL database", accounts)
    if extra := sorted(present - in_backup):
        # --clean drops only what the backup holds: these would be left behind (or block the
        # drop of a table they refer to), mixing two versions of the database.
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        raise errors.Conflict(
            f"The PostgreSQL database has tables that {source} has not ({shown}), probably made by a newer "
            "version of lending: restore into an empty database instead (see docs/deploy.md); nothing was restored.",
            code="database_newer",
        )

    starting()
    dsn, password = _postgres_dsn(database_url)
    status, _, stderr = await _run_tool(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={dsn}",
            str(source),
        ],
        password=password,
    )
    if status != 0:
        raise errors.Unavailable(
            f"pg_restore failed, so nothing was changed: {_tool_problem(stderr)}.", code="restore_failed"
        )
    connection = await _connect_postgres(database_url)
    try:
        return await _postgres_contents(connection)
    finally:
        await connection.close()
