"""Static files: `collectstatic` leaves out the canvas island's npm install and sources
(static/canvas is built by npm; only its dist/ bundle is served)."""

from django.contrib.staticfiles.apps import StaticFilesConfig


class StaticFiles(StaticFilesConfig):
    ignore_patterns = [
        *StaticFilesConfig.ignore_patterns,
        "node_modules",
        "canvas/src/*",
        "canvas/package.json",
        "canvas/package-lock.json",
        "canvas/build.mjs",
    ]
