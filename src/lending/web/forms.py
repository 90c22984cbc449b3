"""Reading HTML forms: a plain dict of trimmed strings, and a safe place to go next."""

from __future__ import annotations

from litestar import Request


async def form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {key: str(value).strip() for key, value in form.items() if isinstance(value, str)}


def safe_next(value: str | None, default: str) -> str:
    """Only paths on this site: never another host, so a link cannot bounce someone away."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")) and "\n" not in value:
        return value
    return default


def form_list(form, key: str) -> list[str]:
    """Every value of a field that may repeat (checkboxes), [] when none was ticked."""
    try:
        return [str(value).strip() for value in form.getall(key)]
    except KeyError:
        return []
