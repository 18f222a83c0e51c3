"""collectstatic ships the canvas bundle, not its npm install or sources."""

from django.core.management import call_command


def test_collectstatic_copies_the_bundle_only(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    canvas = sorted(
        str(p.relative_to(tmp_path / "canvas")) for p in (tmp_path / "canvas").rglob("*")
    )
    assert canvas == ["dist", "dist/canvas.css", "dist/canvas.js"]
    assert (tmp_path / "css" / "app.css").exists()
