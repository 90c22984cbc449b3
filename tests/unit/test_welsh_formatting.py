"""Dates, money and the choice of language, per reader: no database, no web framework.

Messages made early (a borrowing reason built by a pure rule, a fee's stored reason) are shown
later to someone who may read the other language; they must follow the reader, not the writer."""

from __future__ import annotations

from datetime import UTC, date, datetime

from lending import i18n
from lending.loans import fees
from lending.loans import rules as loan_rules


def in_welsh(value: object) -> str:
    with i18n.in_language("cy"):
        return str(value)


def test_dates_and_money_in_each_language():
    moment = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)  # 17:00 in London, summer time
    assert i18n.format_date(date(2027, 1, 31), "cy") == "31 Ionawr 2027"
    assert i18n.format_date(date(2027, 1, 31), "en") == "31 January 2027"
    assert i18n.format_when(moment, "cy", time_zone="Europe/London") == "Dydd Iau 1 Gorffennaf 2027, 17:00"
    assert i18n.format_when(moment, "en", time_zone="Europe/London") == "Thursday 1 July 2027, 17:00"
    assert i18n.format_money(123456, "cy", "gbp") == i18n.format_money(123456, "en", "gbp") == "£1,234.56"


def test_a_lazy_date_is_written_when_it_is_read():
    message = i18n.lazy_gettext("It is on loan until %(day)s.", day=i18n.lazy_date(date(2027, 3, 3)))
    assert str(message) == "It is on loan until 3 March 2027."
    assert "3 Mawrth 2027" in in_welsh(message) and "loan" not in in_welsh(message)


def test_booking_reasons_give_dates_in_the_readers_language():
    policy = loan_rules.Policy()
    reasons = loan_rules.reservation_reasons(
        starts_on=date(2027, 3, 10),
        ends_on=date(2027, 3, 12),
        today=date(2027, 3, 1),
        policy=policy,
        open_days={date(2027, 3, 10): False},
        other_bookings=(),
        loan_due_on=None,
        buffer_days=0,
    )
    [closed] = [reason for reason in reasons if reason.code == "closed_day"]
    assert "10 March 2027" in str(closed.message)
    assert "10 Mawrth 2027" in in_welsh(closed.message)


def test_the_renewal_limit_counts_in_the_readers_language():
    policy = loan_rules.Policy(renewal_limit=1)
    [reason] = loan_rules.renewal_reasons(renewals=1, policy=policy, someone_waiting=False, returned=False)
    assert str(reason.message) == "It has been renewed 1 time, the most allowed."
    assert "renewed" not in in_welsh(reason.message)


def test_a_fees_stored_reason_is_shown_in_the_readers_language():
    assert fees.LATE_RETURN == "Late return"  # stored in English, whoever recorded it
    assert in_welsh(fees.FEE_REASONS[fees.LATE_RETURN]) != "Late return"


def test_a_signed_in_persons_account_decides_their_language():
    assert i18n.negotiate(chosen="en", account_language="cy", accept_language="en") == "cy"
    assert i18n.negotiate(chosen="cy", account_language=None, accept_language="en") == "cy"
    assert i18n.negotiate(chosen=None, account_language=None, accept_language="cy-GB,en;q=0.5") == "cy"
    assert i18n.negotiate(chosen="fr", account_language="xx", accept_language="fr") == "en"
