"""Security headers on every response: a Content-Security-Policy, and the headers that stop
sniffing, framing, referrer leaks and powerful browser features.

A plain ASGI middleware wrapped around the whole application (``app.py``), outside Litestar's
router, because route middleware never sees a request that matched no route (a 404, a 405) or
an error raised by the middleware before the handler (a bad bearer token, a CSRF refusal), and
those pages need the headers too. Headers a handler set itself are kept.

Three policies, by path:

- The app's own pages: scripts and styles only from our own files, nothing inline (no inline
  ``<script>``, ``on...=`` handler or ``style=`` attribute: a test scans the templates). The desk
  scanner shows the camera with ``video.srcObject = stream``, which CSP does not govern (no URL
  is fetched), so it needs no ``blob:``/``mediastream:`` source, and it decodes on the page
  (no worker). A form that pays online is answered with a redirect to Stripe Checkout, and
  ``form-action`` also governs where a form submission is redirected, so Checkout's origin is
  allowed there when online payments are on.
- ``/admin/``: piccolo_admin's Vue bundle, which we do not build. It compiles component
  templates in the browser (Vue's runtime compiler calls ``new Function``): without
  ``'unsafe-eval'`` it renders nothing. It and its Font Awesome icons insert ``<style>``
  elements whose text changes with each piccolo_admin release, so styles need
  ``'unsafe-inline'`` rather than hashes. Scripts stay ``'self'`` (no inline script runs there),
  and only coordinators reach it. (Found by loading it in Chromium under a strict policy.)
- The OpenAPI pages (``/schema``, and piccolo_admin's API docs under ``/admin/api/docs/`` and
  ``/admin/public/docs/``): Swagger UI, loaded by Litestar and piccolo_api from the jsDelivr CDN,
  started by an inline ``<script>``. Instead of ``'unsafe-inline'`` the middleware reads those
  small pages whole and allows exactly their inline scripts and styles by hash.

Every policy keeps ``object-src 'none'``, ``base-uri 'self'`` and ``frame-ancestors 'none'``.

``Referrer-Policy: same-origin``: item, card and referral codes travel in URLs (QR links,
vouchers), so another site must not learn even which page of ours a visitor came from; our own
pages still get the full referrer.

``Strict-Transport-Security`` goes out when the request came over HTTPS, or when ``BASE_URL`` is
``https://`` (then the app sits behind a TLS-terminating proxy and sees plain http itself;
browsers ignore the header on a plain-http response, so sending it there is harmless).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SELF = "'self'"
NONE = "'none'"
CDN = "https://cdn.jsdelivr.net"  # where Litestar's and piccolo_api's Swagger UI pages load it from
STRIPE_CHECKOUT = "https://checkout.stripe.com"

HSTS = "max-age=31536000; includeSubDomains"

# Denied to every page but the camera, which the desk's scanner uses on our own pages.
PERMISSIONS_POLICY = ", ".join(
    [
        "camera=(self)",
        "microphone=()",
        "geolocation=()",
        "payment=()",
        "usb=()",
        "serial=()",
        "hid=()",
        "midi=()",
        "magnetometer=()",
        "gyroscope=()",
        "accelerometer=()",
        "display-capture=()",
        "browsing-topics=()",
    ]
)

Policy = dict[str, tuple[str, ...]]

# Directives every policy ends with.
_LOCKED: Policy = {"object-src": (NONE,), "base-uri": (SELF,), "frame-ancestors": (NONE,)}


def app_policy(form_targets: Iterable[str] = ()) -> Policy:
    """The app's own pages (and its JSON, CSV and images)."""
    return {
        "default-src": (SELF,),
        "script-src": (SELF,),
        "style-src": (SELF,),
        "img-src": (SELF, "data:", "blob:"),
        "font-src": (SELF,),
        "connect-src": (SELF,),
        "media-src": (SELF,),
        "form-action": (SELF, *form_targets),
        **_LOCKED,
    }


ADMIN_POLICY: Policy = {
    "default-src": (SELF,),
    "script-src": (SELF, "'unsafe-eval'"),
    "style-src": (SELF, "'unsafe-inline'"),
    "img-src": (SELF, "data:"),
    "connect-src": (SELF,),
    "form-action": (SELF,),
    **_LOCKED,
}

DOCS_POLICY: Policy = {
    "default-src": (SELF,),
    "script-src": (SELF, CDN),
    "style-src": (SELF, CDN),
    "img-src": (SELF, "data:", CDN),  # Litestar's favicon comes from the CDN; Swagger's icons are data: URLs
    "connect-src": (SELF,),  # the spec and "Try it out" calls, same origin
    "form-action": (SELF,),
    **_LOCKED,
}

# Chrome's PDF viewer used to draw a PDF inside a page made from the PDF response's own policy
# (with an <embed> and inline styles), which object-src 'none' and style-src blanked
# (crbug.com/271452); a PDF needs no page policy, only to stay out of frames.
PDF_POLICY: Policy = {"frame-ancestors": (NONE,)}

_DOCS_PREFIXES = ("/schema", "/admin/api/docs", "/admin/public/docs")
_INLINE = re.compile(rb"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_SRC = re.compile(rb"\ssrc\s*=", re.IGNORECASE)


def serialise(policy: Policy) -> str:
    return "; ".join(" ".join((name, *sources)) for name, sources in policy.items())


def origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in {"http", "https"} and parts.netloc else None


def checkout_origins(*, stripe_secret_key: str, stripe_api_base: str) -> tuple[str, ...]:
    """Where a payment form may be redirected: Stripe Checkout, or the local stand-in serving
    both the API and its checkout pages (``STRIPE_API_BASE``)."""
    if not stripe_secret_key:
        return ()
    stand_in = origin(stripe_api_base) if stripe_api_base else None
    return (STRIPE_CHECKOUT,) if stand_in is None else (STRIPE_CHECKOUT, stand_in)


def _is_docs(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in _DOCS_PREFIXES)


def inline_hashes(html: bytes) -> Policy:
    """``'sha256-...'`` sources for each inline script and style block of a page."""
    found: dict[str, list[str]] = {"script-src": [], "style-src": []}
    for tag, attributes, content in _INLINE.findall(html):
        if tag.lower() == b"script" and _SRC.search(attributes):
            continue
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")
        found["script-src" if tag.lower() == b"script" else "style-src"].append(f"'sha256-{digest}'")
    return {name: tuple(dict.fromkeys(sources)) for name, sources in found.items() if sources}


def with_sources(policy: Policy, extra: Policy) -> Policy:
    return {name: (*sources, *extra.get(name, ())) for name, sources in policy.items()}


class SecurityHeadersMiddleware:
    """Adds the headers to each HTTP response of ``app``; see the module's docstring."""

    def __init__(self, app: ASGIApp, *, base_url: str, form_targets: Iterable[str] = ()) -> None:
        self.app = app
        self.hsts_always = base_url.startswith("https://")
        self.app_csp = serialise(app_policy(form_targets))
        self.admin_csp = serialise(ADMIN_POLICY)
        self.pdf_csp = serialise(PDF_POLICY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        hsts = self.hsts_always or scope.get("scheme") == "https"
        docs = _is_docs(path)
        held: Message | None = None
        chunks: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                content_type = _header(message, b"content-type").split(b";", 1)[0].strip().lower()
                if docs and content_type == b"text/html":
                    held = message  # sent with the body, once its inline blocks are hashed
                    return
                self._add(message, self._csp(path, content_type), hsts)
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                self._add(held, serialise(with_sources(DOCS_POLICY, inline_hashes(body))), hsts)
                start, held = held, None
                await send(start)
                message = {"type": "http.response.body", "body": body, "more_body": False}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _csp(self, path: str, content_type: bytes) -> str:
        if content_type == b"application/pdf":
            return self.pdf_csp
        if _is_docs(path):
            return serialise(DOCS_POLICY)
        if path.startswith("/admin/"):
            return self.admin_csp
        return self.app_csp

    def _add(self, message: Message, csp: str, hsts: bool) -> None:
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        wanted = [
            (b"content-security-policy", csp),
            (b"x-content-type-options", "nosniff"),
            (b"referrer-policy", "same-origin"),
            (b"x-frame-options", "DENY"),
            (b"cross-origin-opener-policy", "same-origin"),
            (b"permissions-policy", PERMISSIONS_POLICY),
        ]
        if hsts:
            wanted.append((b"strict-transport-security", HSTS))
        headers.extend((name, value.encode("latin-1")) for name, value in wanted if name not in present)
        message["headers"] = headers


def _header(message: Message, name: bytes) -> bytes:
    for key, value in message.get("headers", []):
        if key.lower() == name:
            return value
    return b""
