"""What `pip install .` installs: every package of the tree, under the names the code imports.

An editable install finds any package by the path mapping, so a package missing from
pyproject.toml's list only shows on a real install (the systemd deployment's), as an
ImportError in the field. This catches it here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_the_tree_is_listed_for_installation() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {folder: name for name, folder in setuptools["package-dir"].items()}
    in_tree = set()
    for folder, name in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            in_tree.add(".".join([name, *relative.parts]))
    assert in_tree == listed
    assert {"recorder", "recorder.ctl", "recorder.api.handlers"} <= in_tree


def test_every_file_the_portal_serves_is_shipped_as_package_data() -> None:
    # A page or script left out of package-data works from a checkout and fails installed.
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["recorder.api.portal"]
    portal = ROOT / "api" / "portal"
    files = [p.relative_to(portal) for sub in ("templates", "static")
             for p in (portal / sub).iterdir() if p.is_file()]
    assert files
    unshipped = [str(f) for f in files if not any(f.match(pattern) for pattern in data)]
    assert unshipped == []
