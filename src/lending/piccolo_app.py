"""The one Piccolo app holding every table of every domain."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from lending.audit.tables import AuditEvent
from lending.catalog.tables import Category, Item, ItemGroup, Manual, Photo, ProblemReport, Sticker
from lending.config_cache import ConfigVersion
from lending.loans.tables import CalendarFeed, Fee, Hold, Loan, LoanPolicy, Reservation
from lending.mail.tables import Email, EmailTemplate
from lending.members.tables import Account, ApiToken, LoginAttempt, Organisation, Session
from lending.memberships.tables import (
    Agreement,
    AgreementAcceptance,
    Checkout,
    GiftAidDeclaration,
    Membership,
    Payment,
    Refund,
    StripeEvent,
    Tier,
)
from lending.referrals.tables import Referral, ReferralSettings
from lending.suggestions.tables import Suggestion, Support
from lending.venues.tables import Closure, OpeningSession, Site, Venue

APP_CONFIG = AppConfig(
    app_name="lending",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[
        Organisation,
        Account,
        Session,
        ApiToken,
        LoginAttempt,
        AuditEvent,
        Site,
        Category,
        ItemGroup,
        Item,
        Sticker,
        Photo,
        Manual,
        ProblemReport,
        Suggestion,
        Support,
        Tier,
        Agreement,
        AgreementAcceptance,
        Membership,
        GiftAidDeclaration,
        Checkout,
        Payment,
        Refund,
        StripeEvent,
        Email,
        EmailTemplate,
        Venue,
        OpeningSession,
        Closure,
        LoanPolicy,
        Loan,
        Hold,
        Reservation,
        Fee,
        CalendarFeed,
        Referral,
        ReferralSettings,
        ConfigVersion,
    ],
    migration_dependencies=[],
    commands=[],
)
