"""Pay-what-you-can bounds, amounts as people type them, periods and Stripe's states."""

from datetime import UTC, datetime, timedelta

import pytest

from lending.memberships import rules
from lending.memberships.rules import AmountProblem, TierTerms

SLIDING = TierTerms(min_pence=300, max_pence=5000, allow_free=True, interval="one_off")
NO_FREE = TierTerms(min_pence=100, max_pence=2000, allow_free=False, interval="month", offer_pay_forward=False)
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "typed, pence",
    [("5", 500), ("5.5", 550), ("5.50", 550), ("£12.05", 1205), ("", 0), ("0", 0), (" 1,000 ", 100000), ("0.3", 30)],
)
def test_pounds_as_typed(typed, pence):
    assert rules.parse_pounds(typed) == pence


@pytest.mark.parametrize(
    "typed, code",
    [
        ("-1", "amount_negative"),
        ("5.005", "amount_fractional_pence"),
        ("five", "amount_not_a_number"),
        ("1e3", "amount_not_a_number"),
        ("5..0", "amount_not_a_number"),
        ("NaN", "amount_not_a_number"),
    ],
)
def test_pounds_that_are_not_amounts(typed, code):
    found = rules.parse_pounds(typed)
    assert isinstance(found, AmountProblem) and found.code == code


@pytest.mark.parametrize("value, expected", [(500, 500), (5.0, 5), ("250", 250), (0, 0)])
def test_pence_from_the_api(value, expected):
    assert rules.parse_pence(value) == expected


@pytest.mark.parametrize(
    "value, code",
    [
        (5.5, "amount_fractional_pence"),
        (-1, "amount_negative"),
        ("abc", "amount_not_a_number"),
        (True, "amount_not_a_number"),
        (None, "amount_not_a_number"),
        (float("nan"), "amount_not_a_number"),
        ([5], "amount_not_a_number"),
        ("1.5", "amount_not_a_number"),
    ],
)
def test_pence_that_are_not_amounts(value, code):
    found = rules.parse_pence(value)
    assert isinstance(found, AmountProblem) and found.code == code


@pytest.mark.parametrize(
    "terms, pence, online, code",
    [
        (SLIDING, 0, True, None),
        (SLIDING, 300, True, None),
        (SLIDING, 5000, True, None),
        (SLIDING, 299, True, "amount_below_minimum"),
        (SLIDING, 5001, False, "amount_above_maximum"),
        (NO_FREE, 0, False, "free_not_allowed"),
        (
            TierTerms(min_pence=10, max_pence=100, allow_free=False, interval="one_off"),
            20,
            True,
            "amount_below_card_minimum",
        ),
        (TierTerms(min_pence=10, max_pence=100, allow_free=False, interval="one_off"), 20, False, None),
        (SLIDING, -5, False, "amount_negative"),
    ],
)
def test_amount_within_the_bounds(terms, pence, online, code):
    problem = rules.amount_problem(terms, pence, online=online)
    assert (problem.code if problem else None) == code


def test_pay_it_forward_only_where_offered():
    assert rules.forward_problem(SLIDING, 500) is None
    assert rules.forward_problem(NO_FREE, 500).code == "pay_forward_not_offered"
    assert rules.forward_problem(NO_FREE, 0) is None


def test_tier_settings_must_hold_together():
    good = dict(
        name="Standard",
        min_pence=300,
        max_pence=5000,
        suggested=[300, 1000],
        interval="year",
        loan_limit=3,
        loan_days=7,
        allow_free=False,
    )
    assert rules.tier_problems(**good) == {}
    assert set(rules.tier_problems(**{**good, "suggested": [100]})) == {"suggested"}
    assert set(rules.tier_problems(**{**good, "max_pence": 200, "suggested": []})) == {"max_pence"}
    assert set(rules.tier_problems(**{**good, "min_pence": 10})) == {"min_pence"}  # recurring: Stripe minimum
    assert rules.tier_problems(**{**good, "min_pence": 10, "interval": "one_off"}) == {}
    assert set(rules.tier_problems(**{**good, "interval": "weekly", "name": " "})) == {"interval", "name"}


def test_a_month_from_the_end_of_january_is_the_end_of_february():
    assert rules.period_end(T0, "month") == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert rules.period_end(datetime(2028, 2, 29, tzinfo=UTC), "year") == datetime(2029, 2, 28, tzinfo=UTC)
    assert rules.period_end(T0, "one_off") == datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


def test_renewing_early_adds_to_what_is_left_and_late_starts_again():
    early = rules.renewed_until(current_end=T0 + timedelta(days=10), now=T0, interval="year")
    assert early == datetime(2027, 2, 10, 12, 0, tzinfo=UTC)
    late = rules.renewed_until(current_end=T0 - timedelta(days=10), now=T0, interval="year")
    assert late == datetime(2027, 1, 31, 12, 0, tzinfo=UTC)


def test_a_lapsed_membership_reads_expired_with_grace_for_stripe_renewals():
    ended = T0 - timedelta(days=1)
    assert (
        rules.effective_status(status="active", ends_at=ended, now=T0, method="cash", interval="one_off") == "expired"
    )
    assert rules.effective_status(status="active", ends_at=ended, now=T0, method="stripe", interval="month") == "active"
    assert (
        rules.effective_status(
            status="active", ends_at=T0 - timedelta(days=4), now=T0, method="stripe", interval="month"
        )
        == "expired"
    )
    assert (
        rules.effective_status(status="cancelled", ends_at=ended, now=T0, method="cash", interval="one_off")
        == "cancelled"
    )


def test_older_stripe_events_do_not_undo_newer_ones():
    assert rules.apply_stripe_status(current="active", incoming="past_due", current_at=200, incoming_at=100) == "active"
    assert (
        rules.apply_stripe_status(current="active", incoming="past_due", current_at=100, incoming_at=200) == "past_due"
    )
    assert rules.apply_stripe_status(current="cancelled", incoming="active", current_at=1, incoming_at=9) == "cancelled"


def test_refund_bounds():
    assert rules.refund_problem(paid_pence=500, refunded_pence=0, requested_pence=500) is None
    assert rules.refund_problem(paid_pence=500, refunded_pence=200, requested_pence=301).code == "refund_too_large"
    assert rules.refund_problem(paid_pence=500, refunded_pence=500, requested_pence=1).code == "already_refunded"
    assert rules.refund_problem(paid_pence=500, refunded_pence=0, requested_pence=0).code == "amount_not_positive"


def test_gift_aid_needs_what_hmrc_asks_for():
    assert rules.gift_aid_problems(full_name="Alex Jones", house="12", postcode="cf10 1aa") == {}
    assert set(rules.gift_aid_problems(full_name="", house="", postcode="nowhere")) == {
        "gift_aid_name",
        "gift_aid_house",
        "gift_aid_postcode",
    }
    assert rules.normalise_postcode("cf101aa") == "CF10 1AA"


def test_money_reads_as_pounds():
    assert rules.format_money(0) == "£0.00"
    assert rules.format_money(123456) == "£1,234.56"


def test_a_tier_offers_nothing_where_it_allows_it_and_knows_stripes_minimum():
    from lending.memberships.tiers import TierView

    tier = TierView(
        id=1,
        name="T",
        description="",
        suggested=[500, 1000],
        min_pence=10,
        max_pence=5000,
        allow_free=True,
        interval="month",
        offer_pay_forward=True,
        gift_aid=False,
        loan_limit=3,
        loan_days=7,
        public=True,
        active=True,
        position=0,
    )
    assert tier.choices == [0, 500, 1000] and tier.online_min_pence == 30
    paid_only = TierView(**{**tier.__dict__, "allow_free": False, "min_pence": 300})
    assert paid_only.choices == [500, 1000] and paid_only.online_min_pence == 300
