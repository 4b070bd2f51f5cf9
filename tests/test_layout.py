"""The README's layout table matches the tree: every path it lists exists, and every Python module of
the services and of common/ is named in its package's row, so a newcomer's map has no blank spot."""

import re

import pytest

from tests.support.services import ROOT

PACKAGES = ("api/", "common/", "orchestrator/", "preview/", "web/")


def layout_rows():
    """{first cell's paths: the row's text} for each row of the README's Layout table."""
    section = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            first, _, rest = line.strip("|").partition("|")
            rows[tuple(re.findall(r"`([^`]+)`", first))] = rest
    return rows


def test_every_path_the_layout_table_lists_exists():
    missing = [path for paths in layout_rows() for path in paths if not list(ROOT.glob(path.rstrip("/")))]
    assert not missing, f"README's layout table lists paths that do not exist: {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_of_a_package_is_named_in_its_row(package):
    row = next(text for paths, text in layout_rows().items() if package in paths)
    named = set(re.findall(r"`([a-z_]+)(?:/|\.py)?`", row))
    modules = {
        path.stem if path.stem != "__init__" else path.parent.name
        for path in (ROOT / package).rglob("*.py")
        if path.parent != ROOT / package or path.stem != "__init__"
    }
    assert not modules - named, f"README's row for {package} does not name {sorted(modules - named)}"
