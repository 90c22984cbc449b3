"""Jinja set up once: autoescaping, gettext in the reader's language, and page helpers."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine as Engine
from litestar.template.config import TemplateConfig
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup, escape

from lending import codes, i18n
from lending.members import rules
from lending.paths import templates_dir
from lending.web import csrf


@pass_context
def csrf_field(context: Any) -> Markup:
    request = context.get("request")
    token = ScopeState.from_scope(request.scope).csrf_token if request is not None else None
    return Markup(f'<input type="hidden" name="{csrf.FORM_FIELD}" value="{escape(token or "")}">')  # nosec B704: the token is escaped


@pass_context
def page_user(context: Any):
    request = context.get("request")
    return request.scope.get("user") if request is not None else None


@pass_context
def flashes(context: Any) -> list[dict[str, str]]:
    request = context.get("request")
    return list(request.scope.get("state", {}).get("flash_in", [])) if request is not None else []


def navigation(user) -> list[tuple[str, Any]]:
    """The links each role sees, in the order they use them."""
    _ = i18n.lazy_gettext
    links: list[tuple[str, Any]] = [("/", _("Home")), ("/items", _("Catalogue"))]
    if user is None:
        return [*links, ("/join", _("Join"))]
    role = rules.Role(user.role)
    if rules.may_act_as(role, rules.Role.volunteer):
        links.append(("/desk", _("Desk")))
    if rules.may_act_as(role, rules.Role.link_worker):
        links.append(("/referrals", _("Referrals")))
    if rules.may_act_as(role, rules.Role.coordinator):
        links.append(("/manage", _("Manage")))
    links.append(("/suggestions", _("Suggestions")))
    links.append(("/account", _("Your account")))
    return links


def build_environment(*, reload: bool = False) -> Environment:
    """``reload`` re-reads changed templates on each render (for development); otherwise
    each template is compiled once."""
    env = Environment(
        auto_reload=reload,
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(
        lambda message: i18n.gettext(message),
        lambda singular, plural, n: i18n.translations(i18n.current_language()).ungettext(singular, plural, n),
        newstyle=True,
    )
    env.globals.update(
        csrf_field=csrf_field,
        page_user=page_user,
        flashes=flashes,
        navigation=navigation,
        current_language=i18n.current_language,
        LANGUAGES=i18n.LANGUAGES,
        role_label=lambda role: rules.ROLE_LABELS.get(rules.parse_role(role), role),
        display_code=codes.display,
        money=lambda pence: i18n.format_money(pence or 0),
        long_date=lambda moment: i18n.format_date(moment),
        day_date=lambda moment: i18n.format_date(moment, weekday=True),
        when=lambda moment: i18n.format_when(moment),
        pounds=lambda pence: f"{(pence or 0) / 100:.2f}",
    )
    return env


def template_config(*, reload: bool = False) -> TemplateConfig:
    return TemplateConfig(instance=Engine.from_environment(build_environment(reload=reload)))
