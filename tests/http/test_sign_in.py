"""Sign-in, sign-out, sessions and CSRF through HTTP."""

from __future__ import annotations

from lending.members import services as members
from lending.members.tables import Account, Session
from tests.conftest import PASSWORD, csrf_token, post_form, sign_in


async def test_sign_in_lands_each_role_on_its_page(client, people):
    for role, home in (
        ("member", "/account"),
        ("volunteer", "/desk"),
        ("link_worker", "/referrals"),
        ("coordinator", "/manage"),
    ):
        client.cookies.clear()
        response = await sign_in(client, f"{role}@example.org")
        assert response.status_code == 303
        assert response.headers["location"] == home
        cookie = response.headers["set-cookie"]
        assert "id=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        page = await client.get(home)
        assert page.status_code == 200, (role, page.text)
        assert f"You are signed in as Test {role}" in page.text


async def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client, people):
    response = await client.post(
        "/login",
        data={
            "email": "volunteer@example.org",
            "password": PASSWORD,
            "next": "/desk?q=ab",
            "_csrf_token": await csrf_token(client),
        },
    )
    assert response.headers["location"] == "/desk?q=ab"
    client.cookies.clear()
    response = await client.post(
        "/login",
        data={
            "email": "volunteer@example.org",
            "password": PASSWORD,
            "next": "//evil.example/x",
            "_csrf_token": await csrf_token(client),
        },
    )
    assert response.headers["location"] == "/desk"


async def test_wrong_password_shows_the_form_again(client, people):
    response = await sign_in(client, "volunteer@example.org", "not the password")
    assert response.status_code == 400
    assert "The email address or password is not right." in response.text
    assert 'value="volunteer@example.org"' in response.text
    assert "id" not in {c for c in client.cookies.keys()}


async def test_too_many_attempts_is_a_429_with_a_clear_message(client, people):
    for _ in range(members.SIGN_IN_LIMIT.per_email):
        assert (await sign_in(client, "member@example.org", "wrong password")).status_code == 400
    response = await sign_in(client, "member@example.org", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.text
    assert int(response.headers["retry-after"]) > 0


async def test_sign_out_ends_the_session_everywhere(client, people):
    await sign_in(client, "member@example.org")
    token = client.cookies["id"]
    response = await post_form(client, "/logout", {})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert await Session.count().where(Session.token == token).run() == 0
    client.cookies.set("id", token)  # an old cookie replayed
    response = await client.get("/account")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_forged_session_cookie_is_anonymous_and_cleared(client, people):
    client.cookies.set("id", "forged-token")
    response = await client.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Faccount"
    assert 'id=""' in response.headers.get("set-cookie", "") or "id=;" in response.headers.get("set-cookie", "")
    home = await client.get("/")
    assert home.status_code == 200 and "Sign in" in home.text


async def test_forms_without_a_csrf_token_are_refused(client, people):
    await client.get("/login")
    response = await client.post("/login", data={"email": "member@example.org", "password": PASSWORD})
    assert response.status_code == 403
    assert "This form has expired" in response.text
    response = await client.post(
        "/login", data={"email": "member@example.org", "password": PASSWORD, "_csrf_token": "forged"}
    )
    assert response.status_code == 403


async def test_csrf_cookie_does_not_clash_with_the_admin(client, people):
    response = await client.get("/login")
    assert "lending_csrf=" in response.headers["set-cookie"]
    client.cookies.set("csrftoken", "what-the-admin-set")
    assert (await sign_in(client, "member@example.org")).status_code == 303


async def test_deactivated_account_is_signed_out(client, people):
    await sign_in(client, "member@example.org")
    await Account.update({Account.active: False}).where(Account.email == "member@example.org").run()
    response = await client.get("/account")
    assert response.status_code == 303
