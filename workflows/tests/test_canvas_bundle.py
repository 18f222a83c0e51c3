"""The committed canvas bundle (static/canvas/dist) is what the sources build to: `npm ci`
when node_modules does not match the lockfile, then `npm run build` into a temporary
directory, compared byte for byte. Skipped only when npm is missing (.ci/run installs it)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CANVAS = Path(__file__).resolve().parents[2] / "static" / "canvas"
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NPM is None, reason="needs npm (Debian: nodejs npm)")


def installed_matches_lockfile() -> bool:
    """True when node_modules holds exactly the versions package-lock.json pins (npm's
    hidden lockfile lists what is installed; optional packages of other platforms are
    absent from it)."""
    hidden = CANVAS / "node_modules" / ".package-lock.json"
    if not hidden.exists():
        return False
    wanted = json.loads((CANVAS / "package-lock.json").read_text())["packages"]
    have = json.loads(hidden.read_text())["packages"]
    for path, entry in wanted.items():
        if not path:
            continue
        if path not in have:
            if entry.get("optional"):
                continue
            return False
        if have[path].get("version") != entry.get("version"):
            return False
    return all(path in wanted for path in have)


def test_rebuilding_the_sources_gives_the_committed_bundle(tmp_path):
    if not installed_matches_lockfile():
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=CANVAS, check=True, timeout=600)
    subprocess.run(
        [NPM, "run", "--silent", "build", "--", f"--outdir={tmp_path}"],
        cwd=CANVAS,
        check=True,
        timeout=300,
    )
    for name in ("canvas.js", "canvas.css"):
        built = (tmp_path / name).read_bytes()
        committed = (CANVAS / "dist" / name).read_bytes()
        assert built == committed, f"static/canvas/dist/{name} is stale: run `npm run build`"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canvas.css", "canvas.js"]
