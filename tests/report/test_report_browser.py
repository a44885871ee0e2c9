"""The report renders in a real browser (headless Chromium) with every picture loaded.

The page has no script of its own; the test loads a copy with a small probe appended that, once
the page has loaded, writes how many ``<img>`` elements there are and which failed to decode
(``complete`` false or ``naturalWidth`` 0) into the DOM, which Chromium then dumps. A control
run with one corrupted picture proves the probe sees broken images.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pytest_camcheck.report.html import write_report

PROBE = """
<script>
window.addEventListener("load", function () {
  var imgs = document.images, broken = [], wide = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken.push(i); }
    else if (imgs[i].getBoundingClientRect().width > 0) { wide++; }
  }
  var out = document.createElement("pre");
  out.id = "camcheck-probe";
  out.textContent = "images=" + imgs.length + " shown=" + wide + " broken=" + broken.join(",") +
    " cards=" + document.querySelectorAll("article.card").length + " end";
  document.body.appendChild(out);
});
</script>
"""
PROBE_LINE = re.compile(r"images=(\d+) shown=(\d+) broken=([\d,]*) cards=(\d+) end")


def load_in_chromium(chromium: str, page: Path, profile: Path) -> tuple[int, int, list[int], int]:
    """Open ``page`` headless, return (images, displayed images, broken indices, cards)."""
    probed = page.with_name(page.stem + "-probed.html")
    html = page.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--run-all-compositor-stages-before-draw",
        "--virtual-time-budget=5000",
        "--window-size=1200,900",
        "--dump-dom",
        probed.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    match = PROBE_LINE.search(proc.stdout)
    assert match, f"no probe output from chromium (rc {proc.returncode}):\n{proc.stderr[-2000:]}"
    broken = [int(i) for i in match.group(3).split(",") if i]
    return int(match.group(1)), int(match.group(2)), broken, int(match.group(4))


def test_the_report_renders_with_every_image_loaded(chromium, rh, tmp_path) -> None:
    records = [
        rh.make_case("t.py::test_cam[a]", severity=2.0),
        rh.make_case("t.py::test_cam[b]", outcome="xfailed", class_name=rh.XSS),
        rh.make_gate(),
    ]
    page = write_report(tmp_path / "report.html", rh.SUMMARY, records)
    images, shown, broken, cards = load_in_chromium(chromium, page, tmp_path / "profile")
    # overview (energy histogram + class bars) + gate (histogram + class bars)
    # + 2 cards x (original + overlay + 2 strip tiles)
    assert images == 12 == len(rh.read_report(page).images)
    assert broken == []
    assert shown == images, "every image takes up space on the page"
    assert cards == 2


def test_the_browser_check_catches_a_broken_image(chromium, rh, tmp_path) -> None:
    images = rh.case_images()
    # the PNG signature followed by garbage instead of the IHDR chunk: valid base64, no image
    images["overlay"] = "iVBORw0KGgo" + "A" * 40 + images["overlay"][51:400]
    page = write_report(tmp_path / "report.html", {}, [rh.make_case(images=images)])
    count, _, broken, _ = load_in_chromium(chromium, page, tmp_path / "profile")
    alts = [img.attrs["alt"] for img in rh.read_report(page).images]
    assert count == len(alts) == 6
    overlay_index = [i for i, alt in enumerate(alts) if alt.endswith("overlay on layer4")]
    assert broken == overlay_index and len(broken) == 1, "only the overlay fails to decode"
