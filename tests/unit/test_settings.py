import pytest

from lending.db import normalise_postgres_url
from lending.settings import Settings, SettingsError


def test_defaults_to_sqlite_under_var(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"LENDING_DEMO": "1"})
    assert settings.database_url == "sqlite:///var/lending.db"
    assert not settings.is_postgres
    assert len(settings.secret_key) >= 32
    # Every process on the machine gets the same demo secret, so cookies survive a restart.
    assert Settings.from_env({"LENDING_DEMO": "1"}).secret_key == settings.secret_key


def test_missing_secret_key_stops_the_server_with_one_line():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({})
    assert "SECRET_KEY" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(SettingsError):
        Settings.from_env({"SECRET_KEY": "short"})


def test_commands_that_sign_nothing_need_no_secret(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}, serving=False).database_url.startswith("sqlite")


def test_postgres_url_selects_postgres():
    settings = Settings.from_env(
        {"SECRET_KEY": "k" * 40, "DATABASE_URL": "postgresql://u@h/db", "BASE_URL": "https://lib.example.org/"}
    )
    assert settings.is_postgres and settings.secure_cookies
    assert settings.base_url == "https://lib.example.org"


def test_unknown_database_scheme_is_refused():
    with pytest.raises(SettingsError):
        Settings.from_env({"SECRET_KEY": "k" * 40, "DATABASE_URL": "mysql://x/y"})


@pytest.mark.parametrize("url", ["postgresql+asyncpg://u@h:5/d", "postgres://u@h:5/d", "postgresql://u@h:5/d"])
def test_postgres_urls_are_normalised_for_asyncpg(url):
    assert normalise_postgres_url(url) == "postgresql://u@h:5/d"
