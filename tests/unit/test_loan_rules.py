"""The pure rules of lending: who may borrow, whether a copy can go out, renewals, bookings,
backdating and fees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from lending.loans import rules
from lending.loans.rules import Booking, Borrower, Copy, Policy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def codes(reasons) -> list[str]:
    return [reason.code for reason in reasons]


def test_an_active_member_under_the_limit_may_borrow():
    assert rules.borrower_reasons(Borrower("active", loan_limit=3, open_loans=2, overdue_loans=0), Policy()) == ()


def test_every_reason_a_member_may_not_borrow_is_listed_together():
    borrower = Borrower("expired", loan_limit=2, open_loans=2, overdue_loans=1, unpaid_fees_pence=900)
    policy = Policy(fees_enabled=True, block_over_pence=500)
    assert codes(rules.borrower_reasons(borrower, policy)) == [
        "membership_expired",
        "overdue_items",
        "over_limit",
        "unpaid_fees",
    ]
    assert codes(rules.borrower_reasons(Borrower(None, 0, 0, 0), Policy(), adding=0)) == ["no_membership"]
    assert codes(rules.borrower_reasons(Borrower("pending", 3, 0, 0), Policy())) == ["membership_pending"]
    assert codes(rules.borrower_reasons(Borrower("past_due", 3, 0, 0), Policy())) == ["membership_past_due"]
    # Fees stop borrowing only where the venue charges them and set a threshold.
    assert rules.borrower_reasons(Borrower("active", 3, 0, 0, unpaid_fees_pence=900), Policy()) == ()


def test_a_basket_counts_against_the_limit():
    borrower = Borrower("active", loan_limit=3, open_loans=1, overdue_loans=0)
    assert rules.borrower_reasons(borrower, Policy(), adding=2) == ()
    assert codes(rules.borrower_reasons(borrower, Policy(), adding=3)) == ["over_limit"]


def test_a_copy_on_the_shelf_can_go_out():
    assert rules.copy_reasons(Copy(status="available", on_loan=False), member_id=1, now=NOW) == ()


def test_a_copy_that_cannot_go_out_says_why():
    assert codes(rules.copy_reasons(Copy("retired", False), member_id=1, now=NOW)) == ["item_retired"]
    assert codes(rules.copy_reasons(Copy("available", True), member_id=1, now=NOW)) == ["item_unavailable"]
    assert codes(rules.copy_reasons(Copy("maintenance", False), member_id=1, now=NOW)) == ["item_in_maintenance"]
    assert codes(rules.copy_reasons(Copy("missing", False), member_id=1, now=NOW)) == ["item_missing"]
    held = Copy("reserved", False, held_for=2)
    assert codes(rules.copy_reasons(held, member_id=1, now=NOW)) == ["held_for_other"]
    assert rules.copy_reasons(held, member_id=2, now=NOW) == ()  # put aside for this member
    assert codes(rules.copy_reasons(Copy("available", False, waiting_for_others=1), member_id=1, now=NOW)) == [
        "others_waiting"
    ]
    booked = Copy("available", False, reserved_by_other_from=date(2026, 12, 3))
    assert codes(rules.copy_reasons(booked, member_id=1, now=NOW)) == ["reserved_by_other"]
    cleaning = Copy("available", False, available_from=NOW + timedelta(hours=2))
    assert codes(rules.copy_reasons(cleaning, member_id=1, now=NOW)) == ["in_buffer"]
    assert (
        rules.copy_reasons(Copy("available", False, available_from=NOW - timedelta(hours=1)), member_id=1, now=NOW)
        == ()
    )


def test_renewals_stop_at_the_limit_when_someone_waits_or_a_booking_follows():
    policy = Policy(renewal_limit=2)
    assert rules.renewal_reasons(renewals=1, policy=policy, someone_waiting=False, returned=False) == ()
    assert codes(rules.renewal_reasons(renewals=2, policy=policy, someone_waiting=True, returned=False)) == [
        "someone_waiting",
        "renewal_limit",
    ]
    assert codes(rules.renewal_reasons(renewals=0, policy=policy, someone_waiting=False, returned=True)) == [
        "loan_closed"
    ]
    assert codes(
        rules.renewal_reasons(
            renewals=0,
            policy=policy,
            someone_waiting=False,
            returned=False,
            reserved_by_other_from=date(2026, 12, 8),
            new_due_on=date(2026, 12, 8),
        )
    ) == ["reserved_by_other"]
    assert (
        rules.renewal_reasons(
            renewals=0,
            policy=policy,
            someone_waiting=False,
            returned=False,
            reserved_by_other_from=date(2026, 12, 9),
            new_due_on=date(2026, 12, 8),
        )
        == ()
    )


def test_backdating_is_up_to_thirty_days_and_never_before_the_loan():
    assert rules.backdate_problem(when=NOW - timedelta(days=29), now=NOW) is None
    assert rules.backdate_problem(when=NOW - timedelta(days=31), now=NOW)
    assert rules.backdate_problem(when=NOW + timedelta(hours=1), now=NOW)
    assert rules.backdate_problem(when=NOW - timedelta(days=2), now=NOW, not_before=NOW - timedelta(days=1))


def test_loan_periods_come_from_the_thing_then_its_categories_then_the_tier():
    assert rules.loan_days(item_days=3, category_days=(14,), tier_days=7) == 3
    assert rules.loan_days(item_days=None, category_days=(None, 14), tier_days=7) == 14
    assert rules.loan_days(item_days=None, category_days=(), tier_days=10) == 10
    assert rules.loan_days(item_days=None) == rules.DEFAULT_LOAN_DAYS


def book(start: int, end: int, **changes):
    today = date(2026, 12, 1)
    values = dict(
        starts_on=today + timedelta(days=start),
        ends_on=today + timedelta(days=end),
        today=today,
        policy=Policy(),
        open_days={},
        other_bookings=(),
        loan_due_on=None,
        buffer_days=0,
    )
    values.update(changes)
    return codes(rules.reservation_reasons(**values))


def test_bookings_are_in_the_future_not_too_far_not_too_long_and_on_open_days():
    assert book(1, 3) == []
    assert book(0, 2) == ["invalid_dates"]
    assert book(3, 1) == ["invalid_dates"]
    assert book(91, 92) == ["too_far_ahead"]
    assert book(1, 20) == ["too_long"]
    closed = {date(2026, 12, 2): False, date(2026, 12, 4): False}
    assert book(1, 3, open_days=closed) == ["closed_day", "closed_day"]


def test_bookings_keep_clear_of_other_bookings_and_the_current_loan_by_the_buffer():
    other = (Booking(date(2026, 12, 10), date(2026, 12, 12)),)
    assert book(5, 8, other_bookings=other) == []  # back on the 9th, the other collects on the 10th
    assert book(5, 9, other_bookings=other) == ["reservation_conflict"]  # both want the 10th
    assert book(5, 8, other_bookings=other, buffer_days=1) == ["reservation_conflict"]  # no day to clean it
    assert book(5, 7, other_bookings=other, buffer_days=1) == []
    assert book(11, 13, other_bookings=other) == ["reservation_conflict"]  # collects on its last day
    assert book(12, 14, other_bookings=other) == []
    assert book(2, 4, loan_due_on=date(2026, 12, 3)) == ["reservation_conflict"]
    assert book(3, 5, loan_due_on=date(2026, 12, 3)) == []  # collected the day after it is due back
    assert book(3, 5, loan_due_on=date(2026, 12, 3), buffer_days=1) == ["reservation_conflict"]
    assert book(4, 5, loan_due_on=date(2026, 12, 3), buffer_days=1) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 60), st.integers(0, 10), st.integers(1, 60), st.integers(0, 10), st.integers(0, 3))
def test_two_bookings_clash_whichever_is_made_first(a_start, a_length, b_start, b_length, gap):
    today = date(2026, 12, 1)
    a = Booking(today + timedelta(days=a_start), today + timedelta(days=a_start + a_length))
    b = Booking(today + timedelta(days=b_start), today + timedelta(days=b_start + b_length))
    policy = Policy(max_reservation_days=90)

    def clash(new: Booking, existing: Booking) -> bool:
        return "reservation_conflict" in codes(
            rules.reservation_reasons(
                starts_on=new.starts_on,
                ends_on=new.ends_on,
                today=today,
                policy=policy,
                open_days={},
                other_bookings=(existing,),
                loan_due_on=None,
                buffer_days=gap,
            )
        )

    assert clash(a, b) == clash(b, a)
    overlap_days = (min(a.ends_on, b.ends_on) - max(a.starts_on, b.starts_on)).days
    if overlap_days >= 0:
        assert clash(a, b)  # sharing a day always clashes


def test_late_fees_only_where_the_venue_charges_and_up_to_the_cap():
    due, back = date(2026, 12, 1), date(2026, 12, 6)
    assert rules.late_fee(policy=Policy(), due_on=due, returned_on=back) == 0
    charging = Policy(fees_enabled=True, fee_per_day_pence=25)
    assert rules.late_fee(policy=charging, due_on=due, returned_on=back) == 125
    assert rules.late_fee(policy=charging, due_on=due, returned_on=due) == 0
    capped = Policy(fees_enabled=True, fee_per_day_pence=25, fee_cap_pence=100)
    assert rules.late_fee(policy=capped, due_on=due, returned_on=back) == 100


def test_policy_numbers_are_checked_against_their_bounds():
    good = {name: low for name, (low, _high) in rules.POLICY_BOUNDS.items()}
    assert rules.policy_problems(good) == {}
    assert set(rules.policy_problems({**good, "renewal_limit": 21, "hold_days": 0, "buffer_hours": True})) == {
        "renewal_limit",
        "hold_days",
        "buffer_hours",
    }


def test_holds_and_bookings_ignore_the_item_limit_but_not_the_membership():
    full = Borrower("active", loan_limit=1, open_loans=1, overdue_loans=0)
    assert rules.queue_reasons(full, Policy()) == ()
    assert codes(rules.queue_reasons(Borrower("expired", 1, 1, 1), Policy())) == ["membership_expired", "overdue_items"]
