"""Where templates and static files are: inside the installed package (a wheel carries them
as ``lending/templates`` and ``lending/static``), or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _CHECKOUT / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ folder beside {_PACKAGE}")


def templates_dir() -> Path:
    return _find("templates")


def static_dir() -> Path:
    return _find("static")


def fonts_dir() -> Path:
    """Fonts shipped with the app (DejaVu: it has Welsh letters such as ŵ and ŷ, which the
    built-in PDF fonts and Pillow's default font cannot draw, and a slim server image has no
    system fonts)."""
    return static_dir() / "fonts"
