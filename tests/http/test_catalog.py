"""The catalogue through HTTP: item pages, browsing, the API, and adding items at the desk."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lending.catalog import services as catalog
from lending.catalog.services import ItemDetails
from lending.catalog.tables import Item, ItemGroup, Photo, ProblemReport
from tests.conftest import csrf_token, sign_in
from tests.http.test_api import bearer


@pytest.fixture
async def drill(people):
    category = await catalog.create_category(name="Drills")
    return await catalog.add_item(
        details=ItemDetails(
            name="Cordless drill",
            description="18V",
            category_id=category.id,
            safety_notes="Wear goggles.",
            parts="Drill\nCharger",
            loan_days=7,
        )
    )


def jpeg_bytes(width: int = 800, height: int = 600) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


async def test_item_page_is_public(client, drill):
    page = await client.get(f"/i/{drill.code}")
    assert page.status_code == 200
    for text in ("Cordless drill", "Wear goggles.", "Charger", "Available", "Report a problem"):
        assert text in page.text
    lower = await client.get(f"/i/{drill.code.lower()}")
    assert lower.status_code == 301 and lower.headers["location"] == f"/i/{drill.code}"
    missing = await client.get("/i/ZZZZZZZZ")
    assert missing.status_code == 404


async def test_anyone_can_report_a_problem_and_volunteers_see_it(client, drill):
    response = await client.post(
        f"/i/{drill.code}/problems", data={"description": "Chuck is stuck", "_csrf_token": await csrf_token(client)}
    )
    assert response.status_code == 303
    assert [p.description for p in await catalog.open_problems()] == ["Chuck is stuck"]
    response = await client.post(f"/i/{drill.code}/problems", data={"description": "x"})
    assert response.status_code == 403  # no CSRF token
    assert await ProblemReport.count().run() == 1


async def test_browse_and_search(client, drill):
    page = await client.get("/items", params={"q": "drill"})
    assert page.status_code == 200 and "Cordless drill" in page.text
    page = await client.get("/items", params={"q": "' OR 1=1 --"})
    assert page.status_code == 200 and "Nothing matches" in page.text
    assert (await client.get("/items", params={"cursor": "garbage"})).status_code == 422
    assert (await client.get("/items", params={"category": "x"})).status_code == 422


async def test_items_api(client, drill, people):
    listing = (await client.get("/api/v1/items", params={"q": "cordless"})).json()
    assert [i["code"] for i in listing["items"]] == [drill.code] and listing["next_cursor"] is None
    one = (await client.get(f"/api/v1/items/{drill.code}")).json()
    assert one["status"] == "available" and one["due_back"] is None
    assert one["url"] == f"http://testserver.local/i/{drill.code}"
    assert (await client.get("/api/v1/items/NOPE0000")).json()["code"] == "item_not_found"
    headers = await bearer(people, "volunteer")
    created = await client.post(
        "/api/v1/items", json={"name": "Tent", "category": "drills", "parts": ["Poles"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["category"] == "Drills" and len(created.json()["code"]) == 8
    bad = await client.post("/api/v1/items", json={"name": "Tent", "category": "Spaceships"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_category"
    refused = await client.post("/api/v1/items", json={"name": "Tent"}, headers=await bearer(people, "member"))
    assert refused.status_code == 403
    assert await Item.count().run() == 2


async def test_volunteer_adds_an_item_with_a_photo_from_a_phone(client, people):
    await sign_in(client, "volunteer@example.org")
    assert (await client.get("/desk/items/new")).status_code == 200
    response = await client.post(
        "/desk/items/new",
        data={
            "name": "Sewing machine",
            "description": "Singer",
            "condition": "good",
            "parts": "Foot pedal\nBobbins",
            "replacement_value": "120",
            "_csrf_token": await csrf_token(client),
        },
        files={"photo": ("IMG_0001.jpg", jpeg_bytes(3000, 2000), "image/jpeg")},
    )
    assert response.status_code == 303, response.text
    code = response.headers["location"].rsplit("/", 1)[1]
    item = await catalog.get_item(code=code)
    assert item.name == "Sewing machine" and len(item.photo_ids) == 1
    photo = await client.get(f"/photos/{item.photo_ids[0]}")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(photo.content)).size) <= 1600
    assert (await client.get(f"/photos/{item.photo_ids[0]}/thumb")).status_code == 200
    assert "immutable" in photo.headers["cache-control"]


async def test_bad_photo_keeps_the_item_and_says_why(client, people):
    await sign_in(client, "volunteer@example.org")
    response = await client.post(
        "/desk/items/new",
        data={"name": "Tent", "condition": "good", "_csrf_token": await csrf_token(client)},
        files={"photo": ("tent.jpg", b"this is not a photo at all", "image/jpeg")},
    )
    assert response.status_code == 303
    assert await Item.count().run() == 1 and await Photo.count().run() == 0
    page = await client.get(response.headers["location"])
    assert "not a photo" in page.text


async def test_bad_item_form_comes_back_with_everything_typed(client, people):
    await sign_in(client, "volunteer@example.org")
    response = await client.post(
        "/desk/items/new",
        data={
            "name": "",
            "description": "keep me",
            "replacement_value": "lots",
            "condition": "good",
            "_csrf_token": await csrf_token(client),
        },
    )
    assert response.status_code == 422
    assert "keep me" in response.text and "Enter a value in pounds" in response.text
    assert await ItemGroup.count().run() == 0


async def test_retire_and_edit_from_the_desk(client, drill):
    await sign_in(client, "volunteer@example.org")
    token = await csrf_token(client)
    response = await client.post(
        f"/desk/items/{drill.code}/status", data={"status": "retired", "reason": "", "_csrf_token": token}
    )
    assert response.status_code == 303 and (await catalog.get_item(code=drill.code)).status == "available"
    await client.post(
        f"/desk/items/{drill.code}/status",
        data={"status": "retired", "reason": "Motor burnt out", "_csrf_token": token},
    )
    assert (await catalog.get_item(code=drill.code)).status == "retired"
    response = await client.post(
        f"/desk/items/{drill.code}", data={"name": "Cordless drill (old)", "condition": "worn", "_csrf_token": token}
    )
    assert response.status_code == 303
    assert (await catalog.get_item(code=drill.code)).name == "Cordless drill (old)"


async def test_members_cannot_reach_the_item_desk(client, drill):
    await sign_in(client, "member@example.org")
    assert (await client.get("/desk/items/new")).status_code == 403
    assert (await client.get(f"/desk/items/{drill.code}")).status_code == 403


def decoded_urls(pdf: bytes, dpi: int = 150) -> list[str]:
    import pypdfium2
    import zxingcpp

    document = pypdfium2.PdfDocument(pdf)
    found = []
    for page in document:
        image = page.render(scale=dpi / 72).to_pil()
        found += [barcode.text for barcode in zxingcpp.read_barcodes(image)]
    return found


async def test_qr_codes_open_the_item_page(client, drill):
    import zxingcpp

    png = await client.get(f"/api/v1/items/{drill.code}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert barcode.text == f"http://testserver.local/i/{drill.code}"
    svg = await client.get(f"/api/v1/items/{drill.code}/qr.svg")
    assert svg.status_code == 200 and svg.text.lstrip().startswith(("<?xml", "<svg"))
    assert (await client.get("/api/v1/items/ZZZZZZZZ/qr.png")).status_code == 404


async def test_a_printed_label_leads_a_phone_to_the_item_page(client, drill, people):
    """The volunteer prints the label, a visitor's phone reads it, and the page opens."""
    headers = await bearer(people, "volunteer")
    response = await client.post("/api/v1/labels", json={"codes": [drill.code], "template": "L7160"}, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    [url] = decoded_urls(response.content)
    page = await client.get(url.removeprefix("http://testserver.local"))
    assert page.status_code == 200 and "Cordless drill" in page.text
    assert (await catalog.get_item(code=drill.code)).labelled_at is not None


async def test_label_requests_with_bad_input(client, drill, people):
    headers = await bearer(people, "volunteer")
    for body, status, code in (
        ({"codes": [], "template": "L7160"}, 422, "no_labels"),
        ({"codes": ["!!!"], "template": "L7160"}, 422, "invalid_item_code"),
        ({"codes": ["ZZZZZZZZ"], "template": "L7160"}, 404, "item_not_found"),
        ({"codes": [drill.code], "template": "A4-ish"}, 422, "unknown_label_template"),
        ({"codes": [drill.code], "template": "L7160", "start_position": 21}, 422, "invalid_start_position"),
    ):
        response = await client.post("/api/v1/labels", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.json()["code"] == code
    assert (
        await client.post("/api/v1/labels", json={"codes": [drill.code]}, headers=await bearer(people, "member"))
    ).status_code == 403


async def test_desk_prints_unprinted_items_and_sticker_sheets(client, drill, people):
    await sign_in(client, "volunteer@example.org")
    token = await csrf_token(client)
    page = await client.get("/desk/labels/")
    assert page.status_code == 200 and "Everything not yet printed (1 item)" in page.text
    response = await client.post(
        "/desk/labels/", data={"what": "unprinted", "template": "L7160", "start": "3", "_csrf_token": token}
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert decoded_urls(response.content) == [f"http://testserver.local/i/{drill.code}"]
    assert await catalog.unlabelled_codes() == []
    stickers = await client.post(
        "/desk/labels/",
        data={"what": "stickers", "count": "4", "template": "L7651", "start": "1", "_csrf_token": token},
    )
    assert stickers.status_code == 200
    urls = decoded_urls(stickers.content, dpi=200)
    assert len(urls) == 4
    # A sticker from the sheet is claimed when an item is added with it.
    code = urls[0].rsplit("/", 1)[1]
    response = await client.post(
        "/desk/items/new", data={"name": "Tent", "condition": "good", "sticker": code, "_csrf_token": token}
    )
    assert response.headers["location"] == f"/desk/items/{code}"
    bad = await client.post(
        "/desk/labels/", data={"what": "stickers", "count": "lots", "template": "L7160", "_csrf_token": token}
    )
    assert bad.status_code == 422 and "Enter a whole number" in bad.text


async def test_volunteers_see_and_clear_reported_problems(client, drill):
    await catalog.report_problem(code=drill.code, description="Battery will not charge")
    await sign_in(client, "volunteer@example.org")
    desk = await client.get("/desk")
    assert "Battery will not charge" in desk.text
    [problem] = await catalog.open_problems()
    response = await client.post(f"/desk/problems/{problem.id}/resolve", data={"_csrf_token": await csrf_token(client)})
    assert response.status_code == 303 and await catalog.open_problems() == []


async def test_coordinator_edits_the_category_tree_and_sites(client, people):
    await sign_in(client, "coordinator@example.org")
    token = await csrf_token(client)
    assert (
        await client.post("/manage/catalogue/categories", data={"name": "Tools", "_csrf_token": token})
    ).status_code == 303
    tools = (await catalog.category_tree())[0]
    assert (
        await client.post(
            "/manage/catalogue/categories", data={"name": "Saws", "parent": str(tools.id), "_csrf_token": token}
        )
    ).status_code == 303
    duplicate = await client.post(
        "/manage/catalogue/categories", data={"name": "saws", "parent": str(tools.id), "_csrf_token": token}
    )
    assert duplicate.status_code == 409 and "already a category" in duplicate.text
    assert (
        await client.post("/manage/catalogue/sites", data={"name": "Canton", "address": "1 Road", "_csrf_token": token})
    ).status_code == 303
    page = await client.get("/manage/catalogue")
    assert "Saws" in page.text and "Canton" in page.text
    empty = await client.post("/manage/catalogue/sites", data={"name": "", "_csrf_token": token})
    assert empty.status_code == 422 and "Enter the site" in empty.text


async def test_manuals_are_pdfs_only(client, drill, people):
    await sign_in(client, "volunteer@example.org")
    token = await csrf_token(client)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    response = await client.post(
        f"/desk/items/{drill.code}",
        data={"name": "Cordless drill", "condition": "good", "manual_title": "User guide", "_csrf_token": token},
        files={"manual": ("guide.pdf", pdf, "application/pdf")},
    )
    assert response.status_code == 303
    item = await catalog.get_item(code=drill.code)
    [(manual_id, title)] = item.manuals
    assert title == "User guide"
    served = await client.get(f"/manuals/{manual_id}")
    assert served.content == pdf and served.headers["content-type"] == "application/pdf"
    assert "User guide" in (await client.get(f"/i/{drill.code}")).text
    refused = await client.post(
        f"/desk/items/{drill.code}",
        data={"name": "Cordless drill", "condition": "good", "_csrf_token": token},
        files={"manual": ("evil.pdf", b"<script>alert(1)</script>", "application/pdf")},
    )
    assert refused.status_code == 422 and "not a PDF" in refused.text
    assert len((await catalog.get_item(code=drill.code)).manuals) == 1


async def test_search_corrects_a_typo_and_says_so(client, drill):
    page = await client.get("/items", params={"q": "cordlss"})
    assert page.status_code == 200 and "Cordless drill" in page.text
    assert "Showing results for “cordless”" in page.text
    symbols = await client.get("/items", params={"q": "*** !!!"})
    assert symbols.status_code == 200 and "symbols are left out" in symbols.text


async def test_copies_are_one_entry_with_their_availability(client, drill):
    copy = await catalog.add_item(details=ItemDetails(name="x"), copy_of=drill.code)
    await catalog.set_status(code=copy.code, status="maintenance")
    page = await client.get("/items")
    assert page.text.count(">Cordless drill<") == 1
    assert "1 of 2 available" in page.text
    assert "The library has 2 of these; 1 available now." in (await client.get(f"/i/{drill.code}")).text
