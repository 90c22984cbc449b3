"""Translations (English and Welsh) for every layer, without any web framework.

The language of the current request or command lives in a context variable; ``gettext``
reads it at call time and ``lazy_gettext`` when the text is finally shown, so services can
raise errors whose message appears in the reader's language. Catalogues are the ``.po``
files under ``lending/locale``, compiled in memory at first use.
"""

from __future__ import annotations

import contextvars
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = {"en": "English", "cy": "Cymraeg"}
DEFAULT_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).parent / "locale"

_current = contextvars.ContextVar("lending_language", default=DEFAULT_LANGUAGE)
_time_zone = contextvars.ContextVar("lending_time_zone", default="Europe/London")


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: str) -> NullTranslations:
    path = catalogue_path(language)
    if language == DEFAULT_LANGUAGE or not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def set_language(language: str) -> contextvars.Token:
    return _current.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def reset_language(token: contextvars.Token) -> None:
    _current.reset(token)


def current_language() -> str:
    return _current.get()


class in_language:
    """Render text in someone's language (a member's email), whatever the request's is."""

    def __init__(self, language: str) -> None:
        self.language = language

    def __enter__(self) -> None:
        self.token = set_language(self.language)

    def __exit__(self, *_: object) -> None:
        reset_language(self.token)


def gettext(message: str, **variables: object) -> str:
    text = translations(_current.get()).ugettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(_current.get()).ungettext(singular, plural, n)
    return text % {"num": n, **variables}


class LazyText(str):
    """A message translated when it is shown, in the language of whoever reads it."""

    __slots__ = ("message", "variables")

    def __new__(cls, message: str, **variables: object) -> LazyText:
        instance = super().__new__(cls, message)
        instance.message = message
        instance.variables = variables
        return instance

    def __str__(self) -> str:
        return gettext(self.message, **self.variables)

    def __html__(self) -> str:
        from markupsafe import escape

        return str(escape(str(self)))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy_gettext(message: str, **variables: object) -> LazyText:
    return LazyText(message, **variables)


class LazyPlural(LazyText):
    """A plural message (``%(num)d`` is the count) translated when it is shown."""

    __slots__ = ("plural", "count")

    def __new__(cls, singular: str, plural: str, count: int, **variables: object) -> LazyPlural:
        instance = super().__new__(cls, singular, **variables)
        instance.plural = plural
        instance.count = count
        return instance

    def __str__(self) -> str:
        return ngettext(self.message, self.plural, self.count, **self.variables)


def lazy_ngettext(singular: str, plural: str, count: int, **variables: object) -> LazyPlural:
    return LazyPlural(singular, plural, count, **variables)


def negotiate(
    *,
    chosen: str | None,
    account_language: str | None,
    accept_language: str | None,
    offered: tuple[str, ...] | None = None,
) -> str:
    """A signed-in person's account decides (the switch saves their choice there, so it follows
    them to every browser and into their emails), then the switch they used (its cookie), then
    their browser's languages, among the languages the venue offers (all by default); else the
    venue's first."""
    offered = tuple(code for code in (offered or tuple(LANGUAGES)) if code in LANGUAGES) or (DEFAULT_LANGUAGE,)
    for candidate in (account_language, chosen):
        if candidate in offered:
            return candidate
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()
        if tag[:2] in offered:
            return tag[:2]
    return offered[0]


_LOCALES = {"en": "en_GB", "cy": "cy_GB"}


def set_time_zone(time_zone: str) -> contextvars.Token:
    """The venue's zone for dates shown in this task (a request, a reminder run)."""
    return _time_zone.set(time_zone)


def reset_time_zone(token: contextvars.Token) -> None:
    _time_zone.reset(token)


def current_time_zone() -> str:
    return _time_zone.get()


def format_date(moment, language: str | None = None, *, time_zone: str | None = None, weekday: bool = False) -> str:
    """A date as people write it in their language ("31 January 2027", "31 Ionawr 2027"), in
    the venue's time zone; ``weekday`` adds the day's name ("Sunday 31 January 2027")."""
    from zoneinfo import ZoneInfo

    from babel.dates import format_date as babel_format_date

    if moment is None:
        return ""
    if hasattr(moment, "astimezone") and getattr(moment, "tzinfo", None) is not None:
        moment = moment.astimezone(ZoneInfo(time_zone or _time_zone.get())).date()
    pattern = "EEEE d MMMM y" if weekday else "long"
    return babel_format_date(moment, format=pattern, locale=_LOCALES.get(language or current_language(), "en_GB"))


class LazyDate:
    """A date (or moment) inside a lazy message, written in the language of whoever reads it:
    ``_l("Booked from %(day)s.", day=lazy_date(day))`` shows "31 Ionawr 2027" to a Welsh reader."""

    __slots__ = ("moment", "weekday")

    def __init__(self, moment, *, weekday: bool = False) -> None:
        self.moment = moment
        self.weekday = weekday

    def __str__(self) -> str:
        return format_date(self.moment, weekday=self.weekday)

    def __repr__(self) -> str:
        return f"LazyDate({self.moment!r})"


def lazy_date(moment, *, weekday: bool = False) -> LazyDate:
    return LazyDate(moment, weekday=weekday)


def format_when(moment, language: str | None = None, *, time_zone: str | None = None) -> str:
    """A moment as a day and a wall-clock time in the venue's zone: "Sunday 31 January 2027,
    17:00", the form due dates take."""
    from zoneinfo import ZoneInfo

    if moment is None:
        return ""
    local = moment.astimezone(ZoneInfo(time_zone or _time_zone.get()))
    return f"{format_date(local.date(), language, weekday=True)}, {local:%H:%M}"


_currency = contextvars.ContextVar("lending_currency", default="gbp")


def set_currency(currency: str) -> contextvars.Token:
    """The venue's currency for this request or command (set beside its time zone)."""
    return _currency.set(currency)


def reset_currency(token: contextvars.Token) -> None:
    _currency.reset(token)


def current_currency() -> str:
    return _currency.get()


def format_money(pence: int, language: str | None = None, currency: str | None = None) -> str:
    """Money in the reader's language and the venue's currency: "£5.50" in English and in Welsh."""
    from babel.numbers import format_currency

    return format_currency(
        pence / 100,
        (currency or current_currency()).upper(),
        locale=_LOCALES.get(language or current_language(), "en_GB"),
    )
