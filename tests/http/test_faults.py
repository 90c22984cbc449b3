"""Faults: the server is SIGKILLed in the middle of its work and started again on the same
database, on SQLite and on PostgreSQL; nothing may be lost, duplicated or half written.

The load: many client tasks check items out and in through /api/v1/loans and take counter
payments through /api/v1/memberships against a ``lending run`` server with two workers.
Every request is recorded with whatever came back. Once KILL_AFTER requests have been
answered, the server's whole process group is killed (no shutdown code runs), restarted on
the same port and database, and the clients, having waited for /health, carry on until
AFTER_RESTART more are answered. Then the database is read directly and held to what the
clients saw:

- at most one open loan per item, and each item's status agrees with its loans;
- each check-out asks for an (item, member) pair used by no other request and each
  payment has an amount no other request has, so every row names the one request that
  made it: each 201 is there exactly once, nothing is there that no client asked for or
  that was refused, and a request that got no answer (in flight at the kill) either
  happened whole or not at all: a loan or return has its audit row, a loan its receipt in
  the outbox, a payment its audit row, its receipt and its membership's renewal;
- SQLite's file passes ``PRAGMA integrity_check``.

Stripe during a crash: a paid checkout's ``checkout.session.completed`` is delivered by the
Stripe stand-in five times at once through a small forwarding proxy, and the server is
killed as soon as all five have reached it; five more copies hit the dead server and fail;
after the restart five more (and two one by one) succeed. One payment, one membership
period and one ``stripe_event`` row result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET
from tests.fakes.stripe import running_fake_stripe
from tests.http.test_loan_races import library
from tests.http.test_processes import PASSWORD, browser_signed_in, database_for, rows
from tests.http.test_stripe_webhook import tier_id
from tests.servers import Server, free_port, kill, run_command, running_server, server_env

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
WORKERS = 2  # the server's processes: the kill takes both
ITEMS = 10
LOAN_CLIENTS = 24
PAYMENT_CLIENTS = 4
PAYERS = 6
KILL_AFTER = 120  # answered requests before the kill
AFTER_RESTART = 240  # answered requests after the restart before the load stops
REQUEST_TIMEOUT = 30.0
BACK_TIMEOUT = 60.0  # for the restarted server to answer /health
LOAD_TIMEOUT = 100.0
COORDINATOR = "coord@example.org"
PAID_TIER = "Counter supporter"


# --- the library --------------------------------------------------------------------------------


def add_tier(server: Server, name: str, *, min_pounds: str = "1.00", max_pounds: str = "100.00") -> int:
    """A one-off public tier, made by the coordinator on the management page."""
    with browser_signed_in(server, COORDINATOR) as coordinator:
        response = coordinator.post(
            "/manage/memberships/tiers",
            data={
                "name": name,
                "min_pence": min_pounds,
                "max_pence": max_pounds,
                "interval": "one_off",
                "loan_limit": "3",
                "loan_days": "7",
                "public": "yes",
                "active": "yes",
                "position": "0",
                "_csrf_token": coordinator.cookies["lending_csrf"],
            },
        )
        assert response.status_code == 303, response.text
    with httpx.Client(timeout=30) as client:
        return tier_id(client, server, name)


def add_coordinator(folder: Path, env: dict[str, str]) -> None:
    run_command(
        "user",
        "create",
        "--email",
        COORDINATOR,
        "--name",
        "Coord",
        "--role",
        "coordinator",
        "--password",
        PASSWORD,
        cwd=folder,
        env=env,
    )


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    kind: str  # check_out, check_in (by loan id), return_item (by item code), payment
    key: object  # (item code, member id), loan id, item code, amount in pence
    sent_at: float
    answered_at: float | None = None
    status: int | None = None  # None: no answer
    body: dict = field(default_factory=dict)
    error: str = ""
    refused: bool = False  # no answer because no connection was made: the server never saw it

    @property
    def lost(self) -> bool:
        """Sent, perhaps received, never answered: in flight when the server died."""
        return self.status is None and not self.refused


class Load:
    def __init__(
        self, client: httpx.AsyncClient, *, pairs: list[tuple[str, int]], payers: list[int], tier: int, seed: int
    ):
        self.client = client
        self.pairs = pairs
        self.payers = payers
        self.tier = tier
        self.rng = random.Random(seed)
        self.amounts = itertools.count(100)  # pence; the tier takes £1 to £100, so up to 9,900 payments
        self.attempts: list[Attempt] = []
        self.pending = 0
        self.answered = 0
        self.answered_after_restart = 0
        self.restarted = False
        self.stop = False
        self.kill_point = asyncio.Event()
        self.done = asyncio.Event()

    async def send(self, kind: str, key: object, path: str, body: dict) -> Attempt:
        attempt = Attempt(kind, key, time.monotonic())
        self.attempts.append(attempt)
        self.pending += 1
        try:
            response = await self.client.post(path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            attempt.refused, attempt.error = True, repr(exc)
        except httpx.TransportError as exc:
            attempt.error = repr(exc)
        else:
            attempt.status = response.status_code
            with contextlib.suppress(ValueError):
                attempt.body = response.json()
        finally:
            self.pending -= 1
            attempt.answered_at = time.monotonic()
        if attempt.status is None:
            await self.server_back()
            return attempt
        self.answered += 1
        if self.answered >= KILL_AFTER:
            self.kill_point.set()
        if self.restarted:
            self.answered_after_restart += 1
            if self.answered_after_restart >= AFTER_RESTART:
                self.stop = True
                self.done.set()
        return attempt

    async def server_back(self) -> None:
        """As a client would: no answer, so wait until the server answers again."""
        deadline = time.monotonic() + BACK_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await self.client.get("/health", timeout=2)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"the server did not answer /health within {BACK_TIMEOUT:.0f}s")

    async def lend(self) -> None:
        """Check-outs of pairs nobody else asks for; most loans come straight back, and an item
        found out on loan is sometimes checked in by its code (as the desk's scanner does)."""
        while not self.stop and self.pairs:
            item, member = self.pairs.pop()
            lent = await self.send(
                "check_out", (item, member), "/api/v1/loans", {"item_code": item, "member_id": member}
            )
            if lent.status == 201 and self.rng.random() < 0.7:
                await self.send("check_in", lent.body["id"], f"/api/v1/loans/{lent.body['id']}/return", {})
            elif lent.status == 409 and self.rng.random() < 0.3:
                await self.send("return_item", item, "/api/v1/returns", {"item_code": item})
        self.stop = True
        self.done.set()

    async def pay(self) -> None:
        while not self.stop:
            amount = next(self.amounts)
            await self.send(
                "payment",
                amount,
                "/api/v1/memberships",
                {
                    "member_id": self.payers[amount % len(self.payers)],
                    "tier": self.tier,
                    "amount_pence": amount,
                    "method": "cash",
                },
            )


@dataclass
class Crash:
    in_flight: int  # requests the clients had sent and not had answered at the kill
    killed_at: float
    restarted_at: float
    restart_seconds: float


async def _load_with_a_crash(load: Load, server: Server, restart) -> Crash:
    clients = [asyncio.create_task(load.lend()) for _ in range(LOAN_CLIENTS)]
    clients += [asyncio.create_task(load.pay()) for _ in range(PAYMENT_CLIENTS)]
    try:
        async with asyncio.timeout(LOAD_TIMEOUT):
            await load.kill_point.wait()
            # The signal from this loop, between two requests' steps, so the count is exact;
            # then wait (in a thread) for the processes and their port to go.
            in_flight = load.pending
            killed_at = time.monotonic()
            os.killpg(server.process.pid, signal.SIGKILL)
            await asyncio.to_thread(kill, server)
            await asyncio.to_thread(restart)
            restarted_at = time.monotonic()
            load.restarted = True
            await load.done.wait()
            await asyncio.gather(*clients)
    finally:
        load.stop = True
        for client in clients:
            client.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return Crash(in_flight, killed_at, restarted_at, restarted_at - killed_at)


# --- what the database holds ------------------------------------------------------------------


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # SQLite keeps text


@dataclass
class Stored:
    loans: list[dict]
    items: dict[str, str]  # code -> status
    audit: list[dict]
    email_keys: set[str]
    payments: list[dict]
    memberships: dict[int, dict]  # member -> the open membership


def stored(lib, payers: list[int]) -> Stored:
    members = ", ".join(str(member) for member in payers)
    return Stored(
        loans=rows(
            lib,
            "SELECT loan.id, item.code AS item_code, loan.member, loan.returned_at "
            "FROM loan JOIN item ON item.id = loan.item ORDER BY loan.id",
        ),
        items={row["code"]: row["status"] for row in rows(lib, "SELECT code, status FROM item")},
        audit=rows(
            lib,
            "SELECT action, subject, detail FROM audit_event WHERE action IN "
            "('loan.check_out', 'loan.check_in', 'payment.counter', 'membership.activate')",
        ),
        email_keys={row["key"] for row in rows(lib, "SELECT key FROM email")},
        payments=rows(
            lib,
            f"SELECT id, member, membership, amount_pence, covers_until FROM payment "
            f"WHERE member IN ({members}) ORDER BY id",
        ),
        memberships={
            row["member"]: row
            for row in rows(lib, f"SELECT id, member, status, ends_at FROM membership WHERE member IN ({members})")
        },
    )


def _member_in(detail: str) -> int:
    return int(detail.split(";", 1)[0].removeprefix("member:"))


def check_loans(attempts: list[Attempt], found: Stored) -> list[str]:
    problems: list[str] = []
    check_outs = {a.key: a for a in attempts if a.kind == "check_out"}
    assert len(check_outs) == sum(1 for a in attempts if a.kind == "check_out"), "a pair was asked for twice"
    loans_by_id = {loan["id"]: loan for loan in found.loans}
    pairs = Counter((loan["item_code"], loan["member"]) for loan in found.loans)
    open_per_item = Counter(loan["item_code"] for loan in found.loans if loan["returned_at"] is None)

    problems += [f"item {code} has {n} open loans" for code, n in open_per_item.items() if n > 1]
    problems += [f"loan pair {pair} stored {n} times" for pair, n in pairs.items() if n > 1]
    for code, status in found.items.items():
        expected = "on_loan" if open_per_item[code] else "available"
        if status != expected:
            problems.append(f"item {code} is {status!r} with {open_per_item[code]} open loans")
    for loan in found.loans:
        pair = (loan["item_code"], loan["member"])
        asked = check_outs.get(pair)
        if asked is None:
            problems.append(f"loan {loan['id']} {pair}: no client asked for it")
        elif asked.status == 201 and asked.body.get("id") != loan["id"]:
            problems.append(f"loan {loan['id']} {pair}: the client was told loan {asked.body.get('id')}")
        elif asked.status not in (201, None) or asked.refused:
            problems.append(
                f"loan {loan['id']} {pair}: its request was answered {asked.status} / refused "
                f"{asked.refused}: {asked.body or asked.error}"
            )
        if f"loan-receipt:{loan['id']}" not in found.email_keys:
            problems.append(f"loan {loan['id']} {pair}: no receipt in the outbox")
    for attempt in check_outs.values():
        if attempt.status == 201:
            loan = loans_by_id.get(attempt.body["id"])
            if loan is None or (loan["item_code"], loan["member"]) != attempt.key:
                problems.append(f"check-out {attempt.key} answered 201 {attempt.body} but the loan is {loan}")
    receipts = {int(key.split(":", 1)[1]) for key in found.email_keys if key.startswith("loan-receipt:")}
    problems += [f"a receipt for loan {n}, which does not exist" for n in sorted(receipts - loans_by_id.keys())]

    def audited(action: str) -> Counter:
        return Counter(
            (row["subject"].removeprefix("item:"), _member_in(row["detail"]))
            for row in found.audit
            if row["action"] == action
        )

    if audited("loan.check_out") != pairs:
        problems.append(
            f"check-out audit rows {sorted((audited('loan.check_out') - pairs).items())} without "
            f"loans, loans {sorted((pairs - audited('loan.check_out')).items())} without audit rows"
        )
    returned = Counter((loan["item_code"], loan["member"]) for loan in found.loans if loan["returned_at"] is not None)
    if audited("loan.check_in") != returned:
        problems.append(
            f"check-in audit rows {sorted((audited('loan.check_in') - returned).items())} without a "
            f"return, returns {sorted((returned - audited('loan.check_in')).items())} without audit rows"
        )

    # Returns: each answered one is stored; each stored one was asked for and not refused.
    for attempt in attempts:
        if attempt.kind in ("check_in", "return_item") and attempt.status == 200 and attempt.body.get("changed"):
            loan = loans_by_id.get(attempt.body["id"])
            if loan is None or loan["returned_at"] is None:
                problems.append(f"{attempt.kind} {attempt.key} answered {attempt.body} but the loan is {loan}")
    for loan in found.loans:
        if loan["returned_at"] is None:
            continue
        told = any(
            a.status == 200 and a.body.get("changed") and a.body.get("id") == loan["id"]
            for a in attempts
            if a.kind in ("check_in", "return_item")
        )
        maybe = any(
            a.lost and (a.kind, a.key) in (("check_in", loan["id"]), ("return_item", loan["item_code"]))
            for a in attempts
        )
        if not (told or maybe):
            problems.append(f"loan {loan['id']} was returned, but no client was told so or lost such a request")
    return problems


def check_payments(attempts: list[Attempt], found: Stored, payers: list[int]) -> list[str]:
    problems: list[str] = []
    asked = {a.key: a for a in attempts if a.kind == "payment"}
    amounts = Counter(payment["amount_pence"] for payment in found.payments)
    by_id = {payment["id"]: payment for payment in found.payments}
    problems += [f"{n} payments of {amount}p" for amount, n in amounts.items() if n > 1]
    for payment in found.payments:
        attempt = asked.get(payment["amount_pence"])
        if attempt is None:
            problems.append(f"payment {payment['id']} ({payment['amount_pence']}p): no client asked for it")
        elif attempt.status == 201 and attempt.body["payment"]["id"] != payment["id"]:
            problems.append(f"payment {payment['id']}: the client was told {attempt.body['payment']}")
        elif attempt.status not in (201, None) or attempt.refused:
            problems.append(
                f"payment {payment['id']}: its request was answered {attempt.status} / refused "
                f"{attempt.refused}: {attempt.body or attempt.error}"
            )
        elif payment["member"] != payers[payment["amount_pence"] % len(payers)]:
            problems.append(f"payment {payment['id']} is for member {payment['member']}")
        if f"receipt:{payment['id']}" not in found.email_keys:
            problems.append(f"payment {payment['id']}: no receipt in the outbox")
    for attempt in asked.values():
        if attempt.status == 201:
            payment = by_id.get(attempt.body["payment"]["id"])
            if payment is None or payment["amount_pence"] != attempt.key:
                problems.append(f"payment of {attempt.key}p answered 201 but stored as {payment}")
    audited = Counter(
        int(row["subject"].removeprefix("payment:")) for row in found.audit if row["action"] == "payment.counter"
    )
    if audited != Counter(by_id.keys()):
        problems.append(f"payment audit rows {sorted(audited.items())} against payments {sorted(by_id)}")
    for member in payers:
        paid = [p for p in found.payments if p["member"] == member]
        membership = found.memberships.get(member)
        if not paid:
            continue
        if membership is None or membership["status"] != "active":
            problems.append(f"member {member} paid {len(paid)} times but the membership is {membership}")
            continue
        renewals = sum(
            1
            for row in found.audit
            if row["action"] == "membership.activate" and row["subject"] == f"membership:{membership['id']}"
        )
        ends = [_when(p["covers_until"]) for p in paid]
        if renewals != len(paid) or len(set(ends)) != len(paid) or _when(membership["ends_at"]) != max(ends):
            problems.append(
                f"member {member}: {len(paid)} payments covering until {sorted(ends)}, "
                f"{renewals} renewals, the membership ends {membership['ends_at']}"
            )
    return problems


def integrity(url: str) -> list[str]:
    connection = sqlite3.connect(url.split("sqlite:///", 1)[1])
    try:
        checked = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        keys = list(connection.execute("PRAGMA foreign_key_check"))
    finally:
        connection.close()
    return ([] if checked == ["ok"] else [f"integrity_check: {checked[:10]}"]) + (
        [f"foreign_key_check: {keys[:10]}"] if keys else []
    )


def summary(attempts: list[Attempt], crash: Crash, found: Stored) -> str:
    def phase(a: Attempt) -> str:
        return "before" if a.sent_at < crash.killed_at else "restarting" if a.sent_at < crash.restarted_at else "after"

    table = Counter(
        (a.kind, phase(a), a.status if a.status is not None else "refused" if a.refused else "lost") for a in attempts
    )
    lost = [a for a in attempts if a.lost]
    lost_loans = {a.key for a in lost if a.kind == "check_out"}
    lost_payments = {a.key for a in lost if a.kind == "payment"}
    happened = (
        sum(1 for loan in found.loans if (loan["item_code"], loan["member"]) in lost_loans),
        sum(1 for p in found.payments if p["amount_pence"] in lost_payments),
    )
    return "\n".join(
        [
            f"{len(attempts)} requests; {crash.in_flight} in flight at the kill; "
            f"restarted in {crash.restart_seconds:.1f}s",
            f"lost (no answer, connection made): {Counter(a.kind for a in lost)}; of the lost check-outs "
            f"{happened[0]}/{len(lost_loans)} happened, of the lost payments {happened[1]}/{len(lost_payments)}",
            "(kind, phase, status): " + ", ".join(f"{k}={n}" for k, n in sorted(table.items(), key=str)),
            f"stored: {len(found.loans)} loans ({sum(1 for x in found.loans if x['returned_at'] is None)} open), "
            f"{len(found.payments)} payments",
            f"odd answers: {[(a.kind, a.status, a.body) for a in attempts if a.status and a.status >= 500][:5]}",
        ]
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_killed_during_check_outs_and_payments_loses_and_duplicates_nothing(engine, tmp_path):
    with library(engine, tmp_path, items=ITEMS) as lib, contextlib.ExitStack() as servers:
        add_coordinator(tmp_path, lib.env)
        port = free_port()
        server = servers.enter_context(running_server(tmp_path, lib.env, workers=WORKERS, port=port))
        tier = add_tier(server, PAID_TIER)
        headers = {"Authorization": f"Bearer {lib.token}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
            payers = []
            for n in range(PAYERS):
                response = api.post("/api/v1/members", json={"name": f"Payer {n}", "email": f"payer{n}@example.org"})
                assert response.status_code == 201, response.text
                payers.append(response.json()["id"])
        seed = random.randrange(1 << 30)
        pairs = [(item, member) for item in lib.item_codes for member in lib.member_ids]
        random.Random(seed).shuffle(pairs)

        def restart() -> None:
            servers.enter_context(running_server(tmp_path, lib.env, workers=WORKERS, port=port))

        async def run() -> tuple[Load, Crash]:
            limits = httpx.Limits(max_connections=LOAN_CLIENTS + PAYMENT_CLIENTS + 8)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=REQUEST_TIMEOUT, limits=limits
            ) as client:
                load = Load(client, pairs=pairs, payers=payers, tier=tier, seed=seed)
                return load, await _load_with_a_crash(load, server, restart)

        load, crash = asyncio.run(run())
        servers.close()  # the restarted server stops cleanly before the database is read
        found = stored(lib, payers)
        attempts = load.attempts
        why = summary(attempts, crash, found)
        print(f"engine={engine} seed={seed}\n{why}")
        problems = check_loans(attempts, found) + check_payments(attempts, found, payers)
        if engine == "sqlite":
            problems += integrity(lib.url)
        assert not problems, "\n".join(problems[:30]) + "\n" + why
        assert crash.in_flight >= LOAN_CLIENTS // 2, "the kill did not land in the middle of the load:\n" + why
        assert any(a.lost for a in attempts), "no request was cut off by the kill:\n" + why
        assert not [a for a in attempts if a.status is not None and a.status >= 500], why
        after = [a for a in attempts if a.sent_at > crash.restarted_at]
        assert any(a.kind == "check_out" and a.status == 201 for a in after), why
        assert any(a.kind == "payment" and a.status == 201 for a in after), why
        expected = {"check_out": {201, 409}, "check_in": {200}, "return_item": {200, 409}, "payment": {201, 409}}
        assert all(a.status in expected[a.kind] for a in attempts if a.status is not None), why


# --- Stripe's webhook across a crash ----------------------------------------------------------


class ForwardingProxy:
    """Between the Stripe stand-in and the server: passes each request on whole and counts
    it, then relays the answer, or with ``withhold_answers`` reads and counts the answer and
    hangs up instead (a crash after the commit, before Stripe heard back). So a test can kill
    the server once a known number of deliveries have reached it, or have been answered."""

    def __init__(self, upstream_port: int, *, withhold_answers: bool = False):
        self.upstream = ("127.0.0.1", upstream_port)
        self.withhold_answers = withhold_answers
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.forwarded = 0
        self.answered = 0
        self.changed = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def wait_for(self, *, forwarded: int = 0, answered: int = 0, timeout: float = 30) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.forwarded >= forwarded and self.answered >= answered, timeout)

    def _count(self, name: str) -> None:
        with self.changed:
            setattr(self, name, getattr(self, name) + 1)
            self.changed.notify_all()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(connection,), daemon=True).start()

    @staticmethod
    def _read_request(connection: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _relay(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            connection.settimeout(30)
            request = self._read_request(connection)
            with socket.create_connection(self.upstream, timeout=30) as upstream:
                upstream.sendall(request)
                self._count("forwarded")
                answer = b""
                while chunk := upstream.recv(65536):  # the server closes: Stripe asks for Connection: close
                    answer += chunk
                    if not self.withhold_answers:
                        connection.sendall(chunk)
                if answer:
                    self._count("answered")


@contextlib.contextmanager
def forwarding_proxy(upstream_port: int, *, withhold_answers: bool = False) -> Iterator[ForwardingProxy]:
    proxy = ForwardingProxy(upstream_port, withhold_answers=withhold_answers)
    try:
        yield proxy
    finally:
        proxy.close()


def _deliver_through_proxy_and_kill(
    fake, event_id: str, server: Server, port: int, *, withhold_answers: bool, answered: int
) -> list[int | None]:
    """Five copies of the event at once through a proxy; the server is killed the moment all
    five have reached it (and ``answered`` of them have been answered)."""
    with forwarding_proxy(port, withhold_answers=withhold_answers) as proxy, ThreadPoolExecutor(1) as pool:
        fake.set_webhook(proxy.url + "/webhooks/stripe")
        try:
            delivering = pool.submit(fake.resend, event_id, 5, True)
            reached = proxy.wait_for(forwarded=5, answered=answered, timeout=30)
            kill(server)
            assert reached, f"forwarded {proxy.forwarded}, answered {proxy.answered}:\n{fake.log()}"
            return delivering.result(timeout=60)
        finally:
            fake.set_webhook(server.url("/webhooks/stripe"))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_webhook_delivered_around_crashes_has_one_effect(engine, tmp_path):
    """Stripe retries what was not acknowledged. Killed as the first five copies arrive (before
    or after a commit), the server acknowledges none; five retries against the dead server
    fail. Restarted, five more reach it and it is killed after answering one, with the answers
    withheld: the effect is committed, Stripe was never told. Restarted again, five at once and
    two one by one succeed. One payment, one membership period, one stripe_event row."""
    with (
        database_for(engine, tmp_path) as url,
        running_fake_stripe(log_folder=tmp_path) as fake,
        contextlib.ExitStack() as servers,
    ):
        env = server_env(
            SECRET_KEY=SECRET,
            DATABASE_URL=url,
            STRIPE_SECRET_KEY=fake.secret_key,
            STRIPE_WEBHOOK_SECRET=fake.webhook_secret,
            STRIPE_API_BASE=fake.base_url,
        )
        add_coordinator(tmp_path, env)
        run_command(
            "user",
            "create",
            "--email",
            "online@example.org",
            "--name",
            "Online Payer",
            "--role",
            "member",
            "--password",
            PASSWORD,
            cwd=tmp_path,
            env=env,
        )
        token = run_command("token", "create", "--email", "online@example.org", cwd=tmp_path, env=env).stdout.strip()
        port = free_port()

        def start() -> Server:
            return servers.enter_context(running_server(tmp_path, env, workers=WORKERS, port=port))

        server = start()
        tier = add_tier(server, "Online supporter")
        fake.set_webhook(None)  # the payment's events are kept for the test to deliver
        started = httpx.post(
            server.url("/api/v1/memberships/checkout"),
            json={"tier": tier, "amount_pence": 800},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert started.status_code == 200 and started.json()["checkout_url"], started.text
        session_id = started.json()["checkout_url"].rsplit("/", 1)[1]
        fake.pay(session_id)
        [event] = [e for e in fake.events("checkout.session.completed") if e["data"]["object"]["id"] == session_id]

        def db(sql: str) -> list[dict]:
            return rows(_Database(engine, url), sql)

        def recorded() -> int:
            return len(db(f"SELECT id FROM stripe_event WHERE event_id = '{event['id']}'"))

        as_they_arrive = _deliver_through_proxy_and_kill(
            fake, event["id"], server, port, withhold_answers=False, answered=0
        )
        recorded_then = recorded()
        while_down = fake.resend(event["id"], 5, True)
        server = start()
        unacknowledged = _deliver_through_proxy_and_kill(
            fake, event["id"], server, port, withhold_answers=True, answered=1
        )
        recorded_unacknowledged = recorded()
        server = start()
        after_restart = fake.resend(event["id"], 5, True)
        one_by_one = fake.resend(event["id"], 2, False)
        rounds = (
            f"engine={engine}: killed as five arrived {as_they_arrive} (recorded: {recorded_then}); "
            f"while down {while_down}; killed after an answer, answers withheld {unacknowledged} "
            f"(recorded: {recorded_unacknowledged}); after the restart {after_restart}, {one_by_one}"
        )
        print(rounds)
        assert all(status in (200, None) for status in as_they_arrive), rounds
        assert while_down == [None] * 5, rounds
        assert unacknowledged == [None] * 5 and recorded_unacknowledged == 1, rounds
        assert after_restart == [200] * 5 and one_by_one == [200] * 2, rounds
        deliveries = [d["status"] for d in fake.events("checkout.session.completed")[-1]["deliveries"]]
        # The stand-in logs a round's concurrent deliveries as they finish, not as they were sent.
        sent = [as_they_arrive, while_down, unacknowledged, after_restart, one_by_one]
        logged, start_at = [], 0
        for round_sent in sent:
            logged.append(deliveries[start_at : start_at + len(round_sent)])
            start_at += len(round_sent)
        assert len(deliveries) == start_at, rounds
        assert [Counter(r) for r in logged] == [Counter(r) for r in sent], rounds

        member = db("SELECT id FROM account WHERE email = 'online@example.org'")[0]["id"]
        events = db(f"SELECT outcome FROM stripe_event WHERE event_id = '{event['id']}'")
        payments = db(f"SELECT id, stripe_reference, amount_pence, covers_until FROM payment WHERE member = {member}")
        memberships = db(f"SELECT id, status, ends_at FROM membership WHERE member = {member}")
        activations = (
            db(
                f"SELECT id FROM audit_event WHERE action = 'membership.activate' "
                f"AND subject = 'membership:{memberships[0]['id']}'"
            )
            if memberships
            else []
        )
        checkouts = db(f"SELECT status FROM membership_checkout WHERE session_id = '{session_id}'")
        receipts = db("SELECT key FROM email WHERE key LIKE 'receipt:%'")
        why = (
            f"{rounds}\nevents {events}, payments {payments}, memberships {memberships}, checkouts {checkouts}, "
            f"activations {activations}, receipts {receipts}"
        )
        assert [row["outcome"] for row in events] == ["applied"], why
        assert [(p["stripe_reference"], p["amount_pence"]) for p in payments] == [(session_id, 800)], why
        assert [m["status"] for m in memberships] == ["active"], why
        assert _when(memberships[0]["ends_at"]) == _when(payments[0]["covers_until"]), why
        assert len(activations) == 1, why
        assert [c["status"] for c in checkouts] == ["complete"], why
        assert [r["key"] for r in receipts] == [f"receipt:{payments[0]['id']}"], why
        servers.close()
        if engine == "sqlite":
            assert integrity(url) == []


@dataclass(frozen=True)
class _Database:
    """What ``tests.http.test_processes.rows`` needs to read a database."""

    engine: str
    url: str
