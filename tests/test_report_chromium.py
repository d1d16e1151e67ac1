"""The report in a real browser: headless Chromium loads every page from file:// with the network
features off, and each page must load without console messages or script errors, show every
image (naturalWidth > 0), and its live/object filter must hide the other kind.

The check runs inside the page: a copy of the report gets a small script at the top of each
page's <head> that records errors (window 'error' events, including failed image loads, and
console.error calls) and, on window 'load', writes its findings into a `data-check` attribute of
<body>; `chromium --dump-dom` prints the DOM after the load event. Chromium's own console log
(--enable-logging=stderr) is checked too, as a second net.

Chromium is the Debian package `chromium`. Without it the tests fail when CI is set and skip
otherwise.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_report import make_run

from dreambench.leaderboard.report import write_report
from dreambench.leaderboard.results import load_results

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)

# Runs before anything else on the page. Filter check: after load, click "live" and report the
# kinds still displayed, then click "object", then "all".
_CHECKER = """<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    errors.push(t && t !== window && t.src ? 'failed to load ' + t.getAttribute('src') : String(e.message));
  }, true);
  var consoleError = console.error;
  console.error = function () { errors.push([].join.call(arguments, ' ')); consoleError.apply(console, arguments); };
  function shownKinds() {
    var kinds = {};
    document.querySelectorAll('section.subject').forEach(function (s) {
      if (getComputedStyle(s).display !== 'none') { kinds[s.getAttribute('data-kind')] = true; }
    });
    return Object.keys(kinds).sort();
  }
  window.addEventListener('load', function () {
    var images = [].slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                       .map(function (i) { return i.getAttribute('src'); });
    var filters = {};
    ['live', 'object', 'all'].forEach(function (kind) {
      var button = document.querySelector('.filters button[data-filter="' + kind + '"]');
      if (button) { button.click(); filters[kind] = shownKinds(); }
    });
    document.body.setAttribute('data-check', JSON.stringify(
      {images: images.length, broken: broken, errors: errors, filters: filters}));
  });
})();
</script>"""


def _chromium() -> str:
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed; install it with `apt-get install -y chromium`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _browse(browser: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [browser, *_FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)  # hangs only


@pytest.fixture(scope="module")
def browser() -> str:
    return _chromium()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, dreambench_data: Path) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "dreambooth-default-1111aaaa", base=0.62, ci_block=True)
    make_run(
        root, "textual_inversion-smoke-2222bbbb", method="textual_inversion", calibrated=False, base=0.41
    )
    make_run(root, "real-images-default-3333cccc", method="real-images", base=0.77, real_images=True)
    out = tmp_path_factory.mktemp("report") / "report"
    write_report([load_results(p) for p in sorted(root.iterdir())], out, data=dreambench_data)
    return out


def _check_page(browser: str, page: Path, profile: Path) -> tuple[dict[str, Any], str]:
    """Load a checker-instrumented copy of `page` (same folder, so its relative links hold)."""
    text = page.read_text(encoding="utf-8")
    probe = page.with_name(f".check-{page.name}")
    probe.write_text(text.replace("<head>", "<head>\n" + _CHECKER, 1), encoding="utf-8")
    try:
        done = _browse(browser, probe, profile, "--enable-logging=stderr", "--v=0", "--dump-dom")
    finally:
        probe.unlink()
    assert done.returncode == 0, f"chromium failed on {page}: {done.stderr[-2000:]}"
    match = re.search(r'data-check="([^"]*)"', done.stdout)
    assert match, f"{page} did not finish loading in chromium (no data-check on <body>)"
    return json.loads(html.unescape(match.group(1))), done.stderr


def test_pages_load_cleanly_in_chromium(browser: str, report: Path, tmp_path: Path) -> None:
    pages = [report / "index.html", *sorted((report / "runs").glob("*.html"))]
    assert len(pages) == 4
    for page in pages:
        check, log = _check_page(browser, page, tmp_path / "profile")
        assert check["images"] > 0, page
        assert check["broken"] == [], f"{page}: images that did not load: {check['broken']}"
        assert check["errors"] == [], f"{page}: errors: {check['errors']}"
        console = [line for line in log.splitlines() if ":CONSOLE" in line]
        assert console == [], f"{page}: console messages: {console}"
        if page.parent.name == "runs":
            # The live/object filter hides the other kind; "all" shows both again.
            assert check["filters"] == {"live": ["live"], "object": ["object"], "all": ["live", "object"]}, (
                page
            )


def test_screenshot(browser: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "run-page.png"
    page = report / "runs" / "dreambooth-default-1111aaaa.html"
    done = _browse(browser, page, tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    keep = os.environ.get("DREAMBENCH_SCREENSHOT_DIR")
    if keep:  # for looking at the page by eye: DREAMBENCH_SCREENSHOT_DIR=/tmp/shots pytest ...
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
