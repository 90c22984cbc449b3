"""Piccolo's configuration, for the ``piccolo`` command line (migrations).

The app itself binds its engine through ``lending.schema.configure``; this module only gives
Piccolo's tools the same database, chosen by DATABASE_URL.
"""

import os

from piccolo.conf.apps import AppRegistry

from lending.db import make_engine
from lending.settings import DEFAULT_DATABASE_URL

DB = make_engine(os.environ.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL)

APP_REGISTRY = AppRegistry(apps=["lending.piccolo_app"])
