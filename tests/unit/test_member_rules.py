from datetime import UTC, datetime, timedelta

import pytest

from lending.members import rules
from lending.members.rules import Role

PAGES = {"/account": Role.member, "/desk": Role.volunteer, "/referrals": Role.link_worker, "/manage": Role.coordinator}

# Who may reach each role's home page: the permission table the guards must follow.
ALLOWED = {
    "member": {"/account"},
    "volunteer": {"/account", "/desk"},
    "link_worker": {"/account", "/referrals"},
    "coordinator": {"/account", "/desk", "/referrals", "/manage"},
}


@pytest.mark.parametrize("role", list(ALLOWED))
def test_capacities_follow_the_permission_table(role):
    reachable = {page for page, capacity in PAGES.items() if rules.may_act_as(role, capacity)}
    assert reachable == ALLOWED[role]


def test_unknown_roles_may_do_nothing():
    assert not any(rules.may_act_as("wizard", capacity) for capacity in Role)
    assert rules.parse_role(" Coordinator ") is Role.coordinator
    assert rules.parse_role("admin") is None


def test_every_role_has_a_home_it_may_reach():
    for role in Role:
        assert rules.may_act_as(role.value, PAGES[rules.ROLE_HOME[role]])


@pytest.mark.parametrize(
    ("password", "ok"), [("x" * 9, False), ("x" * 10, True), ("x" * 128, True), ("x" * 129, False)]
)
def test_password_length(password, ok):
    assert (rules.password_problem(password) is None) is ok


@pytest.mark.parametrize(
    ("email", "ok"),
    [
        ("a@b.org", True),
        ("a@b", False),
        ("a b@c.org", False),
        ("", False),
        ("@b.org", False),
        ("a@b.org" + "x" * 300, False),
    ],
)
def test_email_shape(email, ok):
    assert (rules.email_problem(email) is None) is ok


def test_sign_in_limit_counts_per_email_and_per_address():
    limit = rules.SignInLimit(per_email=3, per_address=10)
    assert not rules.sign_in_blocked(failures_for_email=2, failures_for_address=9, limit=limit)
    assert rules.sign_in_blocked(failures_for_email=3, failures_for_address=0, limit=limit)
    assert rules.sign_in_blocked(failures_for_email=0, failures_for_address=10, limit=limit)


def test_retry_after_counts_down_from_the_oldest_failure():
    limit = rules.SignInLimit(window=timedelta(minutes=15))
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert rules.retry_after_seconds(oldest_failure=now - timedelta(minutes=10), now=now, limit=limit) == 301
    assert rules.retry_after_seconds(oldest_failure=now - timedelta(minutes=20), now=now, limit=limit) == 1
    assert rules.retry_after_seconds(oldest_failure=None, now=now, limit=limit) == 900
