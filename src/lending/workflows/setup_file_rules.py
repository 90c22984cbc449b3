"""The setup file: one venue's settings, sites, hours, policies, membership tiers, categories,
agreements, message templates and, optionally, its catalogue as a list of things to acquire,
so that another town can start from a working library. Never members, loans, payments,
referrals or the audit log. The format is documented in docs/setup-file.md.

Pure: this module reads a parsed file and says what is wrong with it, every problem with
where it is ("sites[2].hours.tuesday"), or returns the checked contents. Writing them is
``workflows.setup_file``'s job.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import date

from lending.i18n import LANGUAGES
from lending.i18n import lazy_gettext as _l
from lending.loans import rules as loan_rules
from lending.mail import rules as mail_rules
from lending.memberships import rules as membership_rules
from lending.referrals import rules as referral_rules
from lending.venues import rules

FORMAT = "lending-setup"
VERSION = 1
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_ITEMS = 100_000
MAX_LIST = 1_000
MAX_COPIES = 1_000
_REQUIRED = object()


class SetupProblems(Exception):
    """Every problem found, in file order: [(where, message)]."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass(frozen=True)
class SiteSetup:
    name: str
    address: str
    hours: tuple[rules.Session, ...] | None  # None: the venue's
    closures: tuple[rules.Closure, ...]


@dataclass(frozen=True)
class CategorySetup:
    path: tuple[str, ...]
    loan_days: int | None


@dataclass(frozen=True)
class ThingSetup:
    name: str
    category: tuple[str, ...] | None
    description: str
    safety_notes: str
    parts: tuple[str, ...]
    loan_days: int | None
    copies: int


@dataclass(frozen=True)
class Setup:
    venue: rules.VenueDetails
    logo_png: bytes | None
    hours: tuple[rules.Session, ...]
    closures: tuple[rules.Closure, ...]
    sites: tuple[SiteSetup, ...]
    loan_policy: dict[str, int | bool]
    tiers: tuple[membership_rules.TierInput, ...]  # in the order offered
    referral_settings: dict | None
    categories: tuple[CategorySetup, ...]
    agreements: tuple[tuple[int, str, str], ...]  # (version, body, body_cy)
    email_templates: tuple[tuple[str, str, str, str], ...]  # (kind, language, subject, body)
    catalogue: tuple[ThingSetup, ...] | None = None
    counts: dict[str, int] = field(default_factory=dict)


class _Reader:
    """Walks the parsed file, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, where: str, message: object) -> None:
        self.problems.append((where, str(message)))

    def fields(self, value: object, where: str, spec: dict[str, tuple[type | tuple, object]]) -> dict | None:
        """An object's fields by ``spec`` {name: (types, default or _REQUIRED)}; unknown fields
        are problems (a typo in a hand-edited file would otherwise be silently ignored)."""
        if not isinstance(value, dict):
            self.problem(where, _l("This should be an object ({...})."))
            return None
        out: dict = {}
        for name in value:
            if name not in spec:
                self.problem(f"{where}.{name}", _l("This field is not part of a setup file: check its spelling."))
        for name, (types, default) in spec.items():
            if name not in value:
                if default is _REQUIRED:
                    self.problem(f"{where}.{name}", _l("This field is missing."))
                out[name] = None if default is _REQUIRED else default
                continue
            got = value[name]
            if not _is(got, types):
                self.problem(f"{where}.{name}", _l("This should be %(kind)s.", kind=_kind_name(types)))
                out[name] = None if default is _REQUIRED else default
            else:
                out[name] = got
        return out

    def items(self, value: object, where: str, *, limit: int = MAX_LIST) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(where, _l("This should be a list ([...])."))
            return []
        if len(value) > limit:
            self.problem(where, _l("A setup file holds at most %(count)d of these.", count=limit))
            return []
        return value


def _is(value: object, types: type | tuple) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    if value is None:
        return type(None) in types
    return isinstance(value, tuple(t for t in types if t is not bool))


def _kind_name(types: type | tuple) -> str:
    names = {
        str: _l("text"),
        int: _l("a whole number"),
        bool: _l("true or false"),
        list: _l("a list"),
        dict: _l("an object"),
        type(None): _l("null"),
    }
    types = types if isinstance(types, tuple) else (types,)
    return str(_l(" or ")).join(str(names.get(t, t.__name__)) for t in types)


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def _hours(reader: _Reader, value: object, where: str) -> tuple[rules.Session, ...]:
    spec = {day: (str, "") for day in WEEKDAYS}
    found = reader.fields(value, where, spec)
    if found is None:
        return ()
    sessions: list[rules.Session] = []
    for weekday, day in enumerate(WEEKDAYS):
        try:
            sessions.extend(rules.parse_sessions(found[day] or "", weekday))
        except ValueError as exc:
            reader.problem(f"{where}.{day}", exc.args[0] if exc.args else _l("Enter times like 10:00-13:00."))
    return tuple(sessions)


def _closures(reader: _Reader, value: object, where: str) -> tuple[rules.Closure, ...]:
    out = []
    for index, entry in enumerate(reader.items(value, where)):
        here = f"{where}[{index}]"
        found = reader.fields(
            entry, here, {"starts_on": (str, _REQUIRED), "ends_on": (str, _REQUIRED), "reason": (str, "")}
        )
        if found is None or found["starts_on"] is None or found["ends_on"] is None:
            continue
        days: dict[str, date] = {}
        for name in ("starts_on", "ends_on"):
            try:
                days[name] = date.fromisoformat(found[name])
            except ValueError:
                reader.problem(f"{here}.{name}", _l("Write the date as YYYY-MM-DD, like 2026-12-24."))
        if len(days) < 2:
            continue
        closure = rules.Closure(starts_on=days["starts_on"], ends_on=days["ends_on"], reason=found["reason"].strip())
        if problem := rules.closure_problem(closure):
            reader.problem(here, problem)
            continue
        out.append(closure)
    return tuple(out)


def _category_path(reader: _Reader, value: object, where: str) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not all(isinstance(part, str) and _text(part) for part in value):
        reader.problem(where, _l('Give the category as a list of names from the top, like ["Tools", "Drills"].'))
        return None
    path = tuple(_text(part) for part in value)
    if any(len(part) > 100 for part in path):
        reader.problem(where, _l("Keep each category name to at most 100 characters."))
        return None
    return path


def _loan_days(reader: _Reader, value: int | None, where: str) -> int | None:
    if value is not None and not 1 <= value <= 365:
        reader.problem(where, _l("A loan period is between 1 and 365 days."))
        return None
    return value


def _venue(reader: _Reader, value: object, label_templates: tuple[str, ...]) -> tuple[rules.VenueDetails, str | None]:
    found = reader.fields(
        value,
        "venue",
        {
            "name": (str, _REQUIRED),
            "timezone": (str, rules.DEFAULT_TIMEZONE),
            "currency": (str, "gbp"),
            "email": (str, ""),
            "phone": (str, ""),
            "address": (str, ""),
            "website": (str, ""),
            "colour": (str, rules.DEFAULT_COLOUR),
            "languages": (list, ["en", "cy"]),
            "label_template": (str, "L7160"),
            "logo_png_base64": ((str, type(None)), None),
        },
    )
    if found is None:
        return rules.VenueDetails(name=""), None
    languages: tuple[str, ...] = ()
    if all(isinstance(code, str) for code in found["languages"]):
        try:
            languages = rules.parse_languages(",".join(found["languages"]), tuple(LANGUAGES))
        except ValueError as exc:
            reader.problem("venue.languages", exc.args[0])
    else:
        reader.problem("venue.languages", _l('List language codes, like ["en", "cy"].'))
    details = rules.VenueDetails(
        name=(found["name"] or "").strip(),
        timezone=found["timezone"].strip(),
        currency=found["currency"].strip(),
        email=found["email"].strip(),
        phone=found["phone"].strip(),
        address=found["address"].strip(),
        website=found["website"].strip(),
        colour=found["colour"].strip().lower(),
        languages=languages or ("en",),
        label_template=found["label_template"].strip(),
    )
    for name, problem in rules.details_problems(details, label_templates=label_templates).items():
        if name != "languages" or languages:
            reader.problem(f"venue.{name}", problem)
    return details, found["logo_png_base64"]


def _tiers(reader: _Reader, value: object) -> tuple[membership_rules.TierInput, ...]:
    out: list[membership_rules.TierInput] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(reader.items(value, "membership_tiers")):
        here = f"membership_tiers[{index}]"
        found = reader.fields(
            entry,
            here,
            {
                "name": (str, _REQUIRED),
                "description": (str, ""),
                "suggested_pence": (list, []),
                "min_pence": (int, 0),
                "max_pence": (int, 10000),
                "allow_free": (bool, False),
                "interval": (str, "one_off"),
                "offer_pay_forward": (bool, True),
                "gift_aid": (bool, False),
                "loan_limit": (int, 3),
                "loan_days": (int, 7),
                "public": (bool, True),
                "active": (bool, True),
            },
        )
        if found is None or found["name"] is None:
            continue
        name = _text(found["name"])
        suggested = found["suggested_pence"]
        if not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in suggested):
            reader.problem(f"{here}.suggested_pence", _l("List amounts in pence, like [300, 500, 1000]."))
            suggested = []
        for key, problem in membership_rules.tier_problems(
            name=name,
            min_pence=found["min_pence"],
            max_pence=found["max_pence"],
            suggested=suggested,
            interval=found["interval"],
            loan_limit=found["loan_limit"],
            loan_days=found["loan_days"],
            allow_free=found["allow_free"],
        ).items():
            reader.problem(f"{here}.{key}", problem)
        if len(found["description"]) > 2000:
            reader.problem(f"{here}.description", _l("Keep the explanation to at most 2000 characters."))
        if name.casefold() in seen:
            reader.problem(
                f"{here}.name", _l("membership_tiers[%(index)d] already has this name.", index=seen[name.casefold()])
            )
        seen.setdefault(name.casefold(), index)
        out.append(
            membership_rules.TierInput(
                name=name,
                description=found["description"].strip(),
                suggested=sorted(set(suggested)),
                min_pence=found["min_pence"],
                max_pence=found["max_pence"],
                allow_free=found["allow_free"],
                interval=found["interval"],
                offer_pay_forward=found["offer_pay_forward"],
                gift_aid=found["gift_aid"],
                loan_limit=found["loan_limit"],
                loan_days=found["loan_days"],
                public=found["public"],
                active=found["active"],
                position=index,
            )
        )
    return tuple(out)


def _categories(reader: _Reader, value: object) -> tuple[CategorySetup, ...]:
    out: list[CategorySetup] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, entry in enumerate(reader.items(value, "categories")):
        here = f"categories[{index}]"
        found = reader.fields(entry, here, {"path": (list, _REQUIRED), "loan_days": ((int, type(None)), None)})
        if found is None or found["path"] is None:
            continue
        path = _category_path(reader, found["path"], f"{here}.path")
        if path is None:
            continue
        key = tuple(part.casefold() for part in path)
        if key in seen:
            reader.problem(f"{here}.path", _l("categories[%(index)d] already names this category.", index=seen[key]))
            continue
        if len(path) > 1 and key[:-1] not in seen:
            reader.problem(
                f"{here}.path",
                _l("Its parent, %(parent)s, must come earlier in the list.", parent=" › ".join(path[:-1])),
            )
        seen[key] = index
        out.append(CategorySetup(path=path, loan_days=_loan_days(reader, found["loan_days"], f"{here}.loan_days")))
    return tuple(out)


def _sites(reader: _Reader, value: object) -> tuple[SiteSetup, ...]:
    out: list[SiteSetup] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(reader.items(value, "sites")):
        here = f"sites[{index}]"
        found = reader.fields(
            entry,
            here,
            {
                "name": (str, _REQUIRED),
                "address": (str, ""),
                "hours": ((dict, type(None)), None),
                "closures": (list, []),
            },
        )
        if found is None or found["name"] is None:
            continue
        name = _text(found["name"])
        if not name or len(name) > 120:
            reader.problem(f"{here}.name", _l("Give the site a name of at most 120 characters."))
        elif name.casefold() in seen:
            reader.problem(f"{here}.name", _l("sites[%(index)d] already has this name.", index=seen[name.casefold()]))
        seen.setdefault(name.casefold(), index)
        hours = None if found["hours"] is None else _hours(reader, found["hours"], f"{here}.hours")
        out.append(
            SiteSetup(
                name=name,
                address=found["address"].strip(),
                hours=hours or None,
                closures=_closures(reader, found["closures"], f"{here}.closures"),
            )
        )
    return tuple(out)


def _policy(reader: _Reader, value: object) -> dict[str, int | bool]:
    defaults = loan_rules.Policy()
    spec = {name: (int, getattr(defaults, name)) for name in loan_rules.POLICY_BOUNDS}
    spec["fees_enabled"] = (bool, defaults.fees_enabled)
    found = reader.fields(value if value is not None else {}, "loan_policy", spec)
    if found is None:
        return {}
    for name, problem in loan_rules.policy_problems({k: v for k, v in found.items() if k != "fees_enabled"}).items():
        reader.problem(f"loan_policy.{name}", problem)
    return found


def _referral_settings(reader: _Reader, value: object, tiers: tuple[membership_rules.TierInput, ...]) -> dict | None:
    if value is None:
        return None
    found = reader.fields(
        value,
        "referral_settings",
        {
            "tier": ((str, type(None)), None),
            "months_options": (list, list(referral_rules.DEFAULT_MONTHS)),
            "redeem_days": (int, referral_rules.DEFAULT_REDEEM_DAYS),
            "erase_after_days": (int, referral_rules.DEFAULT_ERASE_AFTER_DAYS),
        },
    )
    if found is None:
        return None
    if found["tier"] is not None and _text(found["tier"]).casefold() not in {t.name.casefold() for t in tiers}:
        reader.problem(
            "referral_settings.tier",
            _l("There is no membership tier called %(name)s in this file.", name=found["tier"]),
        )
    try:
        months = referral_rules.parse_months_options(",".join(str(m) for m in found["months_options"]))
    except ValueError:
        reader.problem(
            "referral_settings.months_options", _l("List the lengths in months from 1 to 24, like [3, 6, 12].")
        )
        months = referral_rules.DEFAULT_MONTHS
    for name, low, high in (("redeem_days", 1, referral_rules.MAX_REDEEM_DAYS), ("erase_after_days", 30, 3650)):
        if not low <= found[name] <= high:
            reader.problem(
                f"referral_settings.{name}", _l("Enter a whole number from %(low)d to %(high)d.", low=low, high=high)
            )
    return {
        "tier": _text(found["tier"]) if found["tier"] else None,
        "months_options": months,
        "redeem_days": found["redeem_days"],
        "erase_after_days": found["erase_after_days"],
    }


def _agreements(reader: _Reader, value: object) -> tuple[tuple[int, str, str], ...]:
    out: list[tuple[int, str, str]] = []
    for index, entry in enumerate(reader.items(value, "agreements")):
        here = f"agreements[{index}]"
        found = reader.fields(
            entry, here, {"version": (int, _REQUIRED), "body": (str, _REQUIRED), "body_cy": (str, "")}
        )
        if found is None or found["version"] is None or found["body"] is None:
            continue
        expected = (out[-1][0] + 1) if out else 1
        if found["version"] != expected:
            reader.problem(
                f"{here}.version", _l("Versions count up from 1 in order: expected %(version)d.", version=expected)
            )
        for name, problem in membership_rules.agreement_problems(body=found["body"], body_cy=found["body_cy"]).items():
            reader.problem(f"{here}.{name}", problem)
        out.append(
            (
                found["version"],
                found["body"].replace("\r\n", "\n").strip(),
                found["body_cy"].replace("\r\n", "\n").strip(),
            )
        )
    return tuple(out)


def _email_templates(reader: _Reader, value: object) -> tuple[tuple[str, str, str, str], ...]:
    out: list[tuple[str, str, str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(reader.items(value, "email_templates")):
        here = f"email_templates[{index}]"
        found = reader.fields(
            entry,
            here,
            {
                "kind": (str, _REQUIRED),
                "language": (str, _REQUIRED),
                "subject": (str, _REQUIRED),
                "body": (str, _REQUIRED),
            },
        )
        if found is None or None in found.values():
            continue
        if found["language"] not in LANGUAGES:
            reader.problem(f"{here}.language", _l("Use one of: %(choices)s.", choices=", ".join(LANGUAGES)))
        for name, problem in mail_rules.problems(
            found["kind"], found["subject"].strip(), found["body"].strip()
        ).items():
            reader.problem(f"{here}.{name}", problem)
        key = (found["kind"], found["language"])
        if key in seen:
            reader.problem(
                here,
                _l("email_templates[%(index)d] is already the words for this message and language.", index=seen[key]),
            )
        seen.setdefault(key, index)
        out.append(
            (found["kind"], found["language"], found["subject"].strip(), found["body"].strip().replace("\r\n", "\n"))
        )
    return tuple(out)


def _catalogue(reader: _Reader, value: object, categories: tuple[CategorySetup, ...]) -> tuple[ThingSetup, ...]:
    known = {tuple(part.casefold() for part in c.path) for c in categories}
    out: list[ThingSetup] = []
    for index, entry in enumerate(reader.items(value, "catalogue", limit=MAX_ITEMS)):
        here = f"catalogue[{index}]"
        found = reader.fields(
            entry,
            here,
            {
                "name": (str, _REQUIRED),
                "category": ((list, type(None)), None),
                "description": (str, ""),
                "safety_notes": (str, ""),
                "parts": (list, []),
                "loan_days": ((int, type(None)), None),
                "copies": (int, 1),
            },
        )
        if found is None or found["name"] is None:
            continue
        name = _text(found["name"])
        if not name or len(name) > 200:
            reader.problem(f"{here}.name", _l("Give the thing a name of at most 200 characters."))
        category = None
        if found["category"] is not None:
            category = _category_path(reader, found["category"], f"{here}.category")
            if category is not None and tuple(p.casefold() for p in category) not in known:
                reader.problem(
                    f"{here}.category",
                    _l("There is no category %(path)s in this file's categories.", path=" › ".join(category)),
                )
        parts = found["parts"]
        if not all(isinstance(p, str) for p in parts) or len(parts) > 50 or any(len(p) > 200 for p in parts):
            reader.problem(f"{here}.parts", _l("List at most 50 parts, each at most 200 characters."))
            parts = []
        if not 0 <= found["copies"] <= MAX_COPIES:
            reader.problem(
                f"{here}.copies", _l("Enter a whole number from %(low)d to %(high)d.", low=0, high=MAX_COPIES)
            )
        out.append(
            ThingSetup(
                name=name,
                category=category,
                description=found["description"].strip(),
                safety_notes=found["safety_notes"].strip(),
                parts=tuple(_text(p) for p in parts if _text(p)),
                loan_days=_loan_days(reader, found["loan_days"], f"{here}.loan_days"),
                copies=found["copies"],
            )
        )
    return tuple(out)


def parse_text(text: str | bytes) -> object:
    """The file's JSON, or SetupProblems saying where it stops making sense."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SetupProblems([("file", str(_l("This is not a setup file: it is not text (UTF-8).")))]) from None
    if not text.strip():
        raise SetupProblems([("file", str(_l("The file is empty.")))])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = (
            _l(
                "The file ends too early, at line %(line)d: it may have been cut short while copying.",
                line=text.count("\n") + 1,
            )
            if _unclosed(text)
            else _l(
                "The file is not valid JSON at line %(line)d, column %(column)d: %(reason)s.",
                line=exc.lineno,
                column=exc.colno,
                reason=exc.msg,
            )
        )
        raise SetupProblems([("file", str(message))]) from None


def _unclosed(text: str) -> bool:
    """Whether the text stops inside a string or an unclosed [ or {: a file cut short."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def check(document: object, *, label_templates: tuple[str, ...]) -> Setup:
    """The checked contents of a parsed setup file, or SetupProblems listing every problem."""
    reader = _Reader()
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SetupProblems(
            [
                (
                    "format",
                    str(_l('This is not a setup file from lending: it has no "format": "%(format)s".', format=FORMAT)),
                )
            ]
        )
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SetupProblems([("version", str(_l("The file's version is missing or not a whole number.")))])
    if version > VERSION:
        raise SetupProblems(
            [
                (
                    "version",
                    str(
                        _l(
                            "This file was made by a newer version of lending (setup format %(theirs)d); "
                            "this one reads format %(ours)d. Upgrade this installation first.",
                            theirs=version,
                            ours=VERSION,
                        )
                    ),
                )
            ]
        )
    top = reader.fields(
        document,
        "",
        {
            "format": (str, _REQUIRED),
            "version": (int, _REQUIRED),
            "venue": (dict, _REQUIRED),
            "hours": ((dict, type(None)), None),
            "closures": (list, []),
            "sites": (list, []),
            "loan_policy": ((dict, type(None)), None),
            "membership_tiers": (list, []),
            "referral_settings": ((dict, type(None)), None),
            "categories": (list, []),
            "agreements": (list, []),
            "email_templates": (list, []),
            "catalogue": ((list, type(None)), None),
        },
    )
    assert top is not None
    reader.problems = [(where.lstrip("."), message) for where, message in reader.problems]
    venue, logo = _venue(reader, top["venue"] if top["venue"] is not None else {}, label_templates)
    hours = _hours(reader, top["hours"], "hours") if top["hours"] is not None else ()
    closures = _closures(reader, top["closures"], "closures")
    sites = _sites(reader, top["sites"])
    policy = _policy(reader, top["loan_policy"])
    tiers = _tiers(reader, top["membership_tiers"])
    referral = _referral_settings(reader, top["referral_settings"], tiers)
    categories = _categories(reader, top["categories"])
    agreements = _agreements(reader, top["agreements"])
    templates = _email_templates(reader, top["email_templates"])
    catalogue = _catalogue(reader, top["catalogue"], categories) if top["catalogue"] is not None else None
    logo_png = None
    if logo is not None:
        try:
            logo_png = base64.b64decode(logo, validate=True)
        except (binascii.Error, ValueError):
            reader.problem("venue.logo_png_base64", _l("The logo is not valid base64."))
    if reader.problems:
        raise SetupProblems(reader.problems)
    return Setup(
        venue=venue,
        logo_png=logo_png,
        hours=hours,
        closures=closures,
        sites=sites,
        loan_policy=policy,
        tiers=tiers,
        referral_settings=referral,
        categories=categories,
        agreements=agreements,
        email_templates=templates,
        catalogue=catalogue,
        counts={
            "sites": len(sites),
            "membership_tiers": len(tiers),
            "categories": len(categories),
            "agreements": len(agreements),
            "email_templates": len(templates),
            "catalogue": len(catalogue or ()),
        },
    )


def weekday_hours(sessions: tuple[rules.Session, ...]) -> dict[str, str]:
    """Sessions as the file writes them: {"monday": "10:00-13:00, 14:00-17:00", ...}."""
    return {
        day: rules.format_sessions(tuple(s for s in sessions if s.weekday == weekday))
        for weekday, day in enumerate(WEEKDAYS)
    }
