"""The one Piccolo app holding every table of every domain."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from lending.audit.tables import AuditEvent
from lending.members.tables import Account, ApiToken, LoginAttempt, Session
from lending.referrals.tables import Organisation

APP_CONFIG = AppConfig(
    app_name="lending",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[Organisation, Account, Session, ApiToken, LoginAttempt, AuditEvent],
    migration_dependencies=[],
    commands=[],
)
