"""Helpers of the apps' browser tests: find Debian's chromium and the built front-end, or
say clearly why the tests skip."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the docs' screenshots are refreshed with `DTB_SCREENSHOTS=1 pytest tests/apps`; otherwise the
# tests still take them, into a temporary folder, so a test run leaves the checkout unchanged
IMAGES = (
    ROOT / "docs" / "images"
    if os.environ.get("DTB_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "deeptoolbox-app-screenshots"
)
STATIC = ROOT / "src" / "deeptoolbox" / "apps" / "static" / "index.html"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system chromium (Playwright's own browser download cannot work here)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on PATH: install Debian's chromium package (.ci/run does) to run "
                "the apps' browser tests")  # fmt: skip


def require_front_end() -> None:
    """Skip when the front-end is not built (``make web`` builds it; ``make test`` runs it)."""
    import deeptoolbox.apps._routes as routes

    if not (routes.STATIC / "index.html").is_file():
        pytest.skip("the apps' front-end is not built: run `make web` (needs node and npm)")


def launch_browser(playwright):
    """Headless chromium from the system package."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])


def drag_to_canvas(page, layer_type: str, x: float, y: float) -> None:
    """Drag a palette entry onto the canvas at (x, y) of the canvas box."""
    page.get_by_test_id(f"palette-{layer_type}").drag_to(
        page.get_by_test_id("canvas"), target_position={"x": x, "y": y}
    )


def connect(page, source: str, destination: str, port: str = "in") -> None:
    """Drag from a layer's output port to another layer's input port."""
    start = page.get_by_test_id(f"out-{source}").bounding_box()
    end = page.get_by_test_id(f"in-{destination}-{port}").bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + 2, end["y"] + 2, steps=6)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=4)
    page.mouse.up()


def screenshot(page, name: str) -> Path:
    """Save a screenshot (for the docs, docs/images/apps-*.png, with DTB_SCREENSHOTS=1)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"apps-{name}.png"
    page.screenshot(path=str(path))
    return path
