"""The JSON API: bearer tokens, errors as {code, detail}, the members endpoints."""

from __future__ import annotations

from lending.members import services as members
from lending.members.tables import Account
from tests.conftest import csrf_token, sign_in


async def bearer(people, role: str) -> dict[str, str]:
    token = await members.create_api_token(account_id=people[role].id)
    return {"Authorization": f"Bearer {token}"}


async def test_register_and_find_a_member_with_a_token(client, people):
    headers = await bearer(people, "volunteer")
    response = await client.post(
        "/api/v1/members", json={"name": "Nia Jones", "email": "NIA@example.org", "language": "cy"}, headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["card_code"] and body["id"] and body["email"] == "nia@example.org" and body["role"] == "member"
    found = await client.get("/api/v1/members", params={"q": "nia"}, headers=headers)
    assert found.status_code == 200
    assert [m["card_code"] for m in found.json()["members"]] == [body["card_code"]]
    by_card = await client.get("/api/v1/members", params={"q": body["card_code"].lower()}, headers=headers)
    assert [m["id"] for m in by_card.json()["members"]] == [body["id"]]


async def test_bad_member_input_is_a_clear_4xx_and_writes_nothing(client, people):
    headers = await bearer(people, "volunteer")
    before = await Account.count().run()
    cases = [
        ({"name": "No contact"}, 422, "contact_required"),
        ({"name": "", "email": "x@example.org"}, 422, "invalid_input"),
        ({"name": "Bad", "email": "nope"}, 422, "invalid_input"),
        ({"name": "Dup", "email": "member@example.org"}, 409, "email_taken"),
        ({"name": 5}, 400, "invalid_input"),
        ({"name": "X", "email": "x@example.org", "admin": True}, 400, "invalid_input"),
    ]
    for body, status, code in cases:
        response = await client.post("/api/v1/members", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == code, (body, response.json())
        assert response.json()["detail"]
    response = await client.post(
        "/api/v1/members", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert await Account.count().run() == before


async def test_tokens_need_no_csrf_but_cookies_do(client, people):
    headers = await bearer(people, "volunteer")
    assert (
        await client.post("/api/v1/members", json={"name": "A", "phone": "02920000000"}, headers=headers)
    ).status_code == 201
    await sign_in(client, "volunteer@example.org")
    response = await client.post("/api/v1/members", json={"name": "B", "phone": "02920000001"})
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"
    response = await client.post(
        "/api/v1/members", json={"name": "B", "phone": "02920000001"}, headers={"X-CSRFToken": await csrf_token(client)}
    )
    assert response.status_code == 201


async def test_forged_revoked_or_malformed_tokens_are_401(client, people):
    token = await members.create_api_token(account_id=people["volunteer"].id)
    await members.revoke_api_tokens(account_id=people["volunteer"].id)
    for value in (f"Bearer {token}", "Bearer lnd_forged", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000):
        response = await client.get("/api/v1/members", params={"q": "a"}, headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.json()["code"] == "invalid_token"


async def test_roles_are_enforced_on_the_api(client, people):
    assert (await client.get("/api/v1/members", params={"q": "a"})).json()["code"] == "not_signed_in"
    for role, status in (("member", 403), ("link_worker", 403), ("volunteer", 200), ("coordinator", 200)):
        response = await client.get("/api/v1/members", params={"q": "a"}, headers=await bearer(people, role))
        assert response.status_code == status, role
        if status == 403:
            assert response.json() == {"code": "wrong_role", "detail": "Your account cannot see this page."}
    me = await client.get("/api/v1/me", headers=await bearer(people, "link_worker"))
    assert me.json()["role"] == "link_worker" and me.json()["organisation"] == "Riverside Surgery"


async def test_unknown_api_paths_and_methods_are_json(client, people):
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    response = await client.delete("/api/v1/members", headers=await bearer(people, "volunteer"))
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


async def test_openapi_document_describes_the_api(client):
    document = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/members" in document["paths"]
    assert "post" in document["paths"]["/api/v1/members"]
    assert not any(path.startswith(("/desk", "/manage", "/login")) for path in document["paths"])
