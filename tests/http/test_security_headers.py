"""Security headers on every response (web/security.py): pages, the API, files, errors and
redirects, the admin and the API docs; and templates that a strict Content-Security-Policy
cannot break."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.web import security
from tests.conftest import ROOT, bearer, http_client, make_settings, sign_in

COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers.get("content-security-policy")
    assert policy, f"{response.request.url} has no Content-Security-Policy"
    found = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def assert_secured(response: httpx.Response) -> dict[str, list[str]]:
    where = f"{response.request.method} {response.request.url} ({response.status_code})"
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (where, name, response.headers.get(name))
    permissions = response.headers.get("permissions-policy", "")
    assert "camera=(self)" in permissions and "geolocation=()" in permissions and "microphone=()" in permissions, where
    assert len(response.headers.get_list("content-security-policy")) == 1, where
    found = directives(response)
    assert found["frame-ancestors"] == ["'none'"], where
    if response.headers.get("content-type", "").startswith("application/pdf"):
        return found
    assert found["object-src"] == ["'none'"], where
    assert found["base-uri"] == ["'self'"], where
    assert "'unsafe-inline'" not in found["script-src"], where
    return found


def assert_app_policy(response: httpx.Response) -> None:
    found = assert_secured(response)
    where = f"{response.request.url}"
    assert found["default-src"] == ["'self'"], where
    assert found["script-src"] == ["'self'"], where
    assert found["style-src"] == ["'self'"], where
    assert found["connect-src"] == ["'self'"], where
    assert found["img-src"] == ["'self'", "data:", "blob:"], where
    assert found["form-action"] == ["'self'"], where


def get_routes_without_parameters(app) -> list[str]:
    paths = []
    for route in app.routes:
        if "GET" in (getattr(route, "methods", None) or ()) and "{" not in route.path:
            paths.append(route.path)
    return sorted(set(paths))


def is_docs(path: str) -> bool:
    return path == "/schema" or path.startswith("/schema/")


async def test_every_page_and_api_route_carries_the_headers(app, client, people):
    assert (await sign_in(client, "coordinator@example.org")).status_code == 303
    paths = get_routes_without_parameters(app)
    assert {"/", "/desk", "/manage", "/api/v1/items", "/schema"} <= set(paths), paths
    for path in paths:
        response = await client.get(path)
        assert response.status_code < 500, (path, response.status_code)
        assert "strict-transport-security" not in response.headers, path  # BASE_URL is http here
        if is_docs(path):
            assert_secured(response)
        else:
            assert_app_policy(response)


async def test_errors_and_redirects_carry_the_headers(client, people):
    responses = [
        await client.get("/no-such-page"),  # matched no route: never reaches route middleware
        await client.get("/api/v1/no-such-thing"),
        await client.post("/"),  # 405
        await client.get("/account"),  # 303 to sign in
        await client.post("/login", data={"email": "x@example.org", "password": "x"}),  # CSRF refusal, 403
        await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"}),  # raised by middleware
    ]
    assert [response.status_code for response in responses] == [404, 404, 405, 303, 403, 401]
    assert "text/html" in responses[0].headers["content-type"]
    assert responses[5].json()["code"] == "invalid_token"
    await sign_in(client, "member@example.org")
    refused = await client.get("/manage")
    assert refused.status_code == 403
    for response in [*responses, refused]:
        assert_app_policy(response)


async def test_static_files_and_downloads_get_nosniff_and_keep_their_type(client, people):
    drill = await catalog.add_item(details=ItemDetails(name="Cordless drill"))
    headers = await bearer(people["volunteer"].id)
    files = {
        "/static/css/app.css": "text/css",
        "/static/js/desk-scanner.js": "text/javascript",
        f"/api/v1/items/{drill.code}/qr.png": "image/png",
        f"/api/v1/items/{drill.code}/qr.svg": "image/svg+xml",
    }
    for path, content_type in files.items():
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(content_type), (path, response.headers["content-type"])
        assert_app_policy(response)
    labels = await client.post("/api/v1/labels", json={"codes": [drill.code], "template": "L7160"}, headers=headers)
    assert labels.status_code == 200
    assert labels.headers["content-type"] == "application/pdf"
    assert labels.headers["content-disposition"].startswith("inline")
    found = assert_secured(labels)
    # Chrome's PDF viewer has drawn PDFs in a page governed by the PDF's own policy.
    assert found == {"frame-ancestors": ["'none'"]}
    await sign_in(client, "coordinator@example.org")
    csv = await client.get("/manage/payments/export.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert_app_policy(csv)


async def test_the_admin_has_its_own_policy(client, people):
    anonymous = await client.get("/admin/")
    assert anonymous.status_code == 303
    assert "'unsafe-eval'" in assert_secured(anonymous)["script-src"]
    await sign_in(client, "coordinator@example.org")
    for path in ("/admin/", "/admin/api/tables/"):
        response = await client.get(path)
        assert response.status_code == 200, path
        found = assert_secured(response)
        assert found["script-src"] == ["'self'", "'unsafe-eval'"], path  # Vue compiles templates in the browser
        assert found["connect-src"] == ["'self'"], path
        assert found["default-src"] == ["'self'"], path


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_the_api_docs_allow_exactly_their_inline_script_by_hash(client, people):
    await sign_in(client, "coordinator@example.org")
    for path in ("/schema", "/schema/swagger", "/admin/api/docs/"):
        page = await client.get(path)
        assert page.status_code == 200, path
        found = assert_secured(page)
        inline = [
            body
            for attributes, body in re.findall(r"<script\b([^>]*)>(.*?)</script>", page.text, re.S)
            if "src=" not in attributes
        ]
        assert inline, path
        hashes = [source for source in found["script-src"] if source.startswith("'sha256-")]
        assert hashes == [sha256_source(body) for body in inline], path
        assert "'unsafe-eval'" not in found["script-src"] and "'unsafe-inline'" not in found["style-src"], path
        assert int(page.headers["content-length"]) == len(page.content), path
    schema = await client.get("/schema/openapi.json")
    assert schema.status_code == 200 and schema.json()["info"]["title"] == "lending"
    assert_secured(schema)


async def test_hsts_only_over_https_or_with_an_https_base_url(database, people):
    from lending.app import create_app

    async with http_client(create_app(make_settings(database, BASE_URL="https://lending.example"))) as client:
        for path in ("/", "/no-such-page", "/static/css/app.css"):
            response = await client.get(path)  # plain http: a TLS-terminating proxy in front
            assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains", path
    plain = create_app(make_settings(database, BASE_URL="http://192.168.1.20:8000"))
    async with http_client(plain) as client:
        assert "strict-transport-security" not in (await client.get("/")).headers
    transport = httpx.ASGITransport(app=plain, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver.local") as client:
        assert (await client.get("/")).headers["strict-transport-security"].startswith("max-age=31536000")


async def test_payment_forms_may_be_redirected_to_stripe_checkout_only_when_it_is_used(database, people):
    from lending.app import create_app

    online = create_app(make_settings(database, STRIPE_SECRET_KEY="sk_test_x", STRIPE_WEBHOOK_SECRET="whsec_x"))
    async with http_client(online) as client:
        assert directives(await client.get("/join"))["form-action"] == ["'self'", "https://checkout.stripe.com"]
    stand_in = create_app(
        make_settings(
            database,
            STRIPE_SECRET_KEY="sk_test_x",
            STRIPE_WEBHOOK_SECRET="whsec_x",
            STRIPE_API_BASE="http://127.0.0.1:12111/v1",
        )
    )
    async with http_client(stand_in) as client:
        assert directives(await client.get("/join"))["form-action"] == [
            "'self'",
            "https://checkout.stripe.com",
            "http://127.0.0.1:12111",
        ]
    async with http_client(create_app(make_settings(database))) as client:
        assert directives(await client.get("/join"))["form-action"] == ["'self'"]


async def test_headers_a_handler_set_are_kept():
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"content-security-policy", b"sandbox"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"hello"})

    wrapped = security.SecurityHeadersMiddleware(app, base_url="http://example.org")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://example.org") as client:
        response = await client.get("/")
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text == "hello"


# --- templates and scripts a strict policy would break ------------------------------------------

TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
SCRIPTS = sorted((ROOT / "static" / "js").rglob("*.js"))
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
HANDLER_ATTRIBUTE = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
STYLE = re.compile(r"\sstyle\s*=|<style\b", re.IGNORECASE)


@pytest.mark.parametrize("path", TEMPLATES, ids=[str(p.relative_to(ROOT / "templates")) for p in TEMPLATES])
def test_templates_have_no_inline_scripts_handlers_or_styles(path):
    text = path.read_text()
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in (
            (INLINE_SCRIPT, "inline <script>"),
            (HANDLER_ATTRIBUTE, "on...= handler"),
            (STYLE, "style attribute or <style>"),
            (re.compile(r"javascript:", re.IGNORECASE), "javascript: URL"),
        ):
            if pattern.search(line):
                problems.append(f"{path.name}:{number}: {what}: {line.strip()}")
    assert not problems, "move these into static/ (the Content-Security-Policy blocks them):\n" + "\n".join(problems)


def test_templates_are_scanned():
    assert len(TEMPLATES) > 20 and SCRIPTS


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_scripts_need_no_eval_and_load_nothing_from_elsewhere(path):
    text = path.read_text()
    for banned in ("eval(", "new Function", 'setTimeout("', 'setInterval("', "innerHTML", "https://cdn"):
        assert banned not in text, (path.name, banned)
