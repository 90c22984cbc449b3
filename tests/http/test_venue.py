"""The venue through its pages, the JSON API and the command line: settings with clear errors,
its look, its languages, the words of its messages, per-site hours, the setup file (download,
start from one, `lending venue export/import`) and the first run on an empty installation."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from lending.members.tables import Account
from lending.venues import services as venues
from lending.venues.tables import Venue
from tests.conftest import bearer, csrf_token, http_client, post_form
from tests.services.test_setup import good_file

LENDING = str(Path(sys.executable).parent / "lending")

DETAILS = {
    "name": "Aber Library of Things",
    "address": "1 Great Darkgate Street",
    "email": "hello@aber.example",
    "phone": "01970 000000",
    "website": "https://aber.example",
    "timezone": "Europe/London",
    "currency": "gbp",
    "colour": "#5a2d82",
    "languages": ["en", "cy"],
    "default_language": "en",
    "label_template": "L7160",
}


def logo_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 80), "#ffffff").save(buffer, "PNG")
    return buffer.getvalue()


async def test_the_coordinator_sets_the_venue_with_clear_errors(as_role):
    venues.forget_cache()
    async with as_role("coordinator") as manage:
        page = await manage.get("/manage/venue")
        assert page.status_code == 200 and "Download this setup" in page.text
        bad = await post_form(
            manage, "/manage/venue", {**DETAILS, "colour": "#ffff00", "timezone": "Wales/Aber", "languages": []}
        )
        assert bad.status_code == 422
        assert "hard to read" in bad.text and "is not a time zone" in bad.text and "at least one language" in bad.text
        assert (await Venue.count().run()) <= 1 and not (await venues.settings(fresh=True)).set_up
        good = await post_form(manage, "/manage/venue", DETAILS)
        assert good.status_code == 303
        home = await manage.get("/")
        assert "Aber Library of Things" in home.text and "hello@aber.example" in home.text
        assert "/venue/theme.css" in home.text
        theme = await manage.get("/venue/theme.css")
        assert "--brand: #5a2d82" in theme.text and theme.headers["content-type"].startswith("text/css")

        refused = await manage.post(
            "/manage/venue/logo",
            data={"_csrf_token": await csrf_token(manage)},
            files={"logo": ("logo.png", b"not a picture", "image/png")},
        )
        assert refused.status_code == 422 and (await manage.get("/venue/logo.png")).status_code == 404
        saved = await manage.post(
            "/manage/venue/logo",
            data={"_csrf_token": await csrf_token(manage)},
            files={"logo": ("logo.png", logo_png(), "image/png")},
        )
        assert saved.status_code == 303
        served = await manage.get("/venue/logo.png")
        assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
        assert "/venue/logo.png?v=" in (await manage.get("/")).text


async def test_only_offered_languages_are_used(as_role, client):
    venues.forget_cache()
    async with as_role("coordinator") as manage:
        await post_form(manage, "/manage/venue", {**DETAILS, "languages": ["cy"], "default_language": "cy"})
    venues.forget_cache()
    page = await client.get("/", headers={"Accept-Language": "en-GB"})
    assert '<html lang="cy">' in page.text and 'hreflang="en"' not in page.text
    assert (await client.get("/language/en")).status_code == 404


async def test_the_venue_api_follows_the_same_rules(client, people):
    coordinator = await bearer(people["coordinator"].id)
    member = await bearer(people["member"].id)
    body = {"name": "Aber", "timezone": "Nowhere/Else", "colour": "#ffffff", "languages": ["fr"]}
    assert (await client.put("/api/v1/venue", json=body, headers=member)).status_code == 403
    refused = await client.put("/api/v1/venue", json=body, headers=coordinator)
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_venue"
    saved = await client.put("/api/v1/venue", json={"name": "Aber", "languages": ["cy", "en"]}, headers=coordinator)
    assert saved.status_code == 200 and saved.json()["languages"] == ["cy", "en"]
    assert (await client.get("/api/v1/venue")).json()["name"] == "Aber"
    exported = await client.get("/api/v1/venue/setup", headers=coordinator)
    assert exported.status_code == 200 and exported.json()["venue"]["name"] == "Aber"
    assert (await client.get("/api/v1/venue/setup", headers=member)).status_code == 403
    again = await client.post("/api/v1/venue/setup", content=exported.content, headers=coordinator)
    assert again.status_code == 409 and again.json()["code"] == "venue_already_set_up"


async def test_a_coordinator_starts_from_a_setup_file_on_a_fresh_install(as_role, people):
    venues.forget_cache()
    async with as_role("coordinator") as manage:
        page = await manage.get("/manage/venue")
        assert "Start from another venue" in page.text
        broken = {**good_file(), "categories": [{"path": ["Tools"]}, {"path": ["Tools"]}]}
        refused = await manage.post(
            "/manage/venue/setup",
            data={"_csrf_token": await csrf_token(manage)},
            files={"setup": ("setup.json", json.dumps(broken).encode(), "application/json")},
        )
        assert refused.status_code == 422 and "categories[1].path" in refused.text
        assert not (await venues.settings(fresh=True)).set_up
        started = await manage.post(
            "/manage/venue/setup",
            data={"_csrf_token": await csrf_token(manage)},
            files={"setup": ("setup.json", json.dumps(good_file()).encode(), "application/json")},
        )
        assert started.status_code == 303
        page = await manage.get("/manage/venue")
        assert "Llandeilo Library of Things" in page.text and "Start from another venue" not in page.text
        download = await manage.get("/manage/venue/setup.json?catalogue=yes")
        assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        assert json.loads(download.text)["catalogue"] == []


async def test_own_words_for_messages_are_written_checked_and_reset(as_role):
    async with as_role("coordinator") as manage:
        listing = await manage.get("/manage/emails")
        assert listing.status_code == 200 and "Due back soon" in listing.text
        bad = await post_form(manage, "/manage/emails/due_soon/cy", {"subject": "Yn ôl: {thing}", "body": "Helo"})
        assert bad.status_code == 422 and "{thing}" in bad.text
        good = await post_form(
            manage, "/manage/emails/due_soon/cy", {"subject": "Yn ôl yn fuan: {item}", "body": "Helo {name}"}
        )
        assert good.status_code == 303 and "Your words" in (await manage.get("/manage/emails")).text
        assert (await manage.get("/manage/emails/nothing/cy")).status_code == 404
        await post_form(manage, "/manage/emails/due_soon/cy", {"reset": "yes"})
        assert "Your words" not in (await manage.get("/manage/emails")).text


async def test_each_site_has_its_own_hours_and_closures(as_role):
    from lending.catalog import services as catalog

    hub = await catalog.create_site(name="Penparcau Hub")
    async with as_role("coordinator") as manage:
        page = await manage.get(f"/manage/lending?site={hub.id}")
        assert "Opening hours at Penparcau Hub" in page.text
        overlapping = await post_form(
            manage, "/manage/lending/hours", {"site_id": str(hub.id), "day_2": "10-13, 12-15"}
        )
        assert overlapping.status_code == 422
        saved = await post_form(manage, "/manage/lending/hours", {"site_id": str(hub.id), "day_2": "16:00-19:00"})
        assert saved.status_code == 303 and saved.headers["location"].startswith(f"/manage/lending?site={hub.id}")
        closed = await post_form(
            manage,
            "/manage/lending/closures",
            {"starts_on": "2099-08-01", "reason": "Eisteddfod", "site_id": str(hub.id)},
        )
        assert closed.status_code == 303
        assert "Eisteddfod (Penparcau Hub)" in (await manage.get("/manage/lending")).text
    cal = await venues.calendar(fresh=True, site_id=hub.id)
    assert [s.weekday for s in cal.sessions] == [2] and cal.closures[-1].reason == "Eisteddfod"
    assert (await venues.calendar(fresh=True)).sessions == ()  # the venue's own hours are untouched


async def test_settings_pages_are_for_coordinators_only(as_role):
    for role in ("member", "volunteer", "link_worker"):
        async with as_role(role) as other:
            for path in ("/manage/venue", "/manage/emails", "/manage/venue/setup.json"):
                assert (await other.get(path)).status_code == 403, (role, path)


async def test_the_first_run_sets_up_an_empty_installation(app, database):
    from lending.workflows import first_run

    first_run.forget()
    venues.forget_cache()
    async with http_client(app) as visitor:
        home = await visitor.get("/")
        assert home.status_code == 200 and "Set up your library" in home.text
        token = await csrf_token(visitor)
        bad = await visitor.post(
            "/welcome",
            data={
                "_csrf_token": token,
                "name": "Ann",
                "email": "ann@example.org",
                "password": "short",
                "start": "new",
                "venue_name": "",
                "timezone": "Europe/London",
                "languages": ["en"],
            },
        )
        assert bad.status_code == 422 and not await Account.exists().run()
        good = await visitor.post(
            "/welcome",
            data={
                "_csrf_token": token,
                "name": "Ann",
                "email": "ann@example.org",
                "password": "a long enough password",
                "start": "file",
            },
            files={"setup": ("setup.json", json.dumps(good_file()).encode(), "application/json")},
        )
        assert good.status_code == 303 and good.headers["location"] == "/manage/venue"
        assert "Llandeilo Library of Things" in (await visitor.get("/manage/venue")).text
        assert "Set up your library" not in (await visitor.get("/")).text
    async with http_client(app) as latecomer:
        token = await csrf_token(latecomer)
        again = await latecomer.post(
            "/welcome",
            data={
                "_csrf_token": token,
                "name": "Mallory",
                "email": "m@example.org",
                "password": "a long enough password",
                "start": "new",
                "venue_name": "Mine",
                "languages": ["en"],
            },
        )
        assert again.status_code == 303 and again.headers["location"] == "/login"
    assert await Account.count().run() == 1


def lending(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "LENDING_DEMO"}}
    return subprocess.run(
        [LENDING, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_venue_export_and_import_on_the_command_line(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    assert lending("demo", cwd=source).returncode == 0
    exported = lending("venue", "export", "setup.json", "--catalogue", cwd=source)
    assert exported.returncode == 0 and "Cardiff Library of Things" in exported.stdout
    text = (source / "setup.json").read_text()
    assert "member@demo.example" not in text and "Alex" not in text
    checked = lending("venue", "import", str(source / "setup.json"), "--check", cwd=target)
    assert checked.returncode == 0 and "Nothing was written" in checked.stdout
    imported = lending("venue", "import", str(source / "setup.json"), cwd=target)
    assert imported.returncode == 0, imported.stderr
    assert lending("venue", "export", "again.json", "--catalogue", cwd=target).returncode == 0
    assert (target / "again.json").read_text() == text
    twice = lending("venue", "import", str(source / "setup.json"), cwd=target)
    assert twice.returncode != 0 and "already set up" in twice.stderr and len(twice.stderr.splitlines()) == 1

    bad = json.loads(text)
    bad["venue"]["timezone"] = "Europe/Nowhere"
    bad["hours"]["tuesday"] = "10-13, 12-14"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = lending("venue", "import", str(tmp_path / "bad.json"), cwd=empty)
    assert refused.returncode == 2
    assert "venue.timezone:" in refused.stderr and "hours.tuesday:" in refused.stderr
    assert "nothing was imported" in refused.stderr
    missing = lending("venue", "import", str(tmp_path / "nope.json"), cwd=empty)
    assert missing.returncode == 2 and "Cannot read" in missing.stderr


async def test_things_from_a_setup_file_are_listed_to_acquire_and_filled_at_the_desk(as_role):
    from lending.catalog.tables import Item, ItemGroup
    from lending.workflows import setup_file

    await setup_file.import_text(
        json.dumps(
            {
                **good_file(),
                "catalogue": [
                    {
                        "name": "Tenon saw",
                        "category": ["Tools", "Saws"],
                        "description": "Fine cuts.",
                        "parts": ["Guard"],
                        "copies": 2,
                    }
                ],
            }
        )
    )
    thing = await ItemGroup.select(ItemGroup.id).where(ItemGroup.name == "Tenon saw").first().run()
    async with as_role("coordinator") as manage:
        page = await manage.get("/manage/catalogue")
        assert "Things to acquire" in page.text and "Tenon saw" in page.text and "0 of 2" in page.text
        form = await manage.get(f"/desk/items/new?wanted={thing['id']}")
        assert "Fine cuts." in form.text and "which the library wants" in form.text
        added = await post_form(
            manage, "/desk/items/new", {"wanted": str(thing["id"]), "name": "Tenon saw", "condition": "good"}
        )
        assert added.status_code == 303
        assert await Item.count().where(Item.item_group == thing["id"]).run() == 1
        assert "1 of 2" in (await manage.get("/manage/catalogue")).text
