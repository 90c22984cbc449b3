"""``pip install .`` (not only an editable install) gives a working app: the wheel carries
templates, static files, migrations, translations and the admin package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_everything_the_app_needs(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("lending-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        site = tmp_path / "site"
        archive.extractall(site)
    for required in (
        "lending/templates/base/layout.html",
        "lending/templates/errors/error.html",
        "lending/static/css/app.css",
        "lending/piccolo_conf.py",
        "admin/__init__.py",
        "lending/locale/cy/LC_MESSAGES/messages.po",
    ):
        assert required in names, required
    assert any(n.startswith("lending/piccolo_migrations/lending_") for n in names)
    assert any(n.endswith("entry_points.txt") for n in names)

    # Run the unpacked wheel from an unrelated folder: nothing may come from the checkout.
    script = textwrap.dedent("""
        import asyncio, sys
        from pathlib import Path
        site = Path(sys.argv[1]).resolve()
        import lending
        from lending.paths import templates_dir, static_dir
        assert Path(lending.__file__).resolve().is_relative_to(site), lending.__file__
        assert templates_dir().is_relative_to(site) and static_dir().is_relative_to(site)
        from litestar.testing import TestClient
        from lending import db
        from lending.app import create_app
        app = create_app()
        asyncio.run(db.migrate())
        with TestClient(app) as client:
            assert client.get("/").status_code == 200
            assert client.get("/static/css/app.css").status_code == 200
            assert client.get("/health").json() == {"status": "ok"}
            assert "Mewngofnodi" in client.get("/login", headers={"Accept-Language": "cy"}).text
        print("wheel works")
    """)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "LENDING_DEMO": "1",
        "DATABASE_URL": f"sqlite:///{workdir / 'lending.db'}",
    }
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", script, str(site)], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wheel works" in result.stdout
