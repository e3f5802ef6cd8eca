"""The one fixture command reproduces the committed fixtures byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefixgate_trainer import fixtures

from .conftest import FIXTURES


@pytest.mark.slow
def test_fixture_command_reproduces_committed_files(tmp_path: Path) -> None:
    committed = json.loads((FIXTURES / "MANIFEST.json").read_text())
    fixtures.build(tmp_path / "fx")
    rebuilt = json.loads((tmp_path / "fx" / "MANIFEST.json").read_text())
    if rebuilt["versions"] != committed["versions"]:
        pytest.skip(f"library versions differ from the committed ones: {rebuilt['versions']}")
    assert rebuilt["files"].keys() == committed["files"].keys()
    differing = [f for f in committed["files"] if committed["files"][f] != rebuilt["files"][f]]
    assert differing == []


def test_committed_fixtures_match_manifest_and_size_budget() -> None:
    import hashlib

    manifest = json.loads((FIXTURES / "MANIFEST.json").read_text())
    total = 0
    for name, entry in manifest["files"].items():
        data = (FIXTURES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        total += len(data)
    assert total <= 20 * 1024 * 1024
