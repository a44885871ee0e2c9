"""The report in a real browser (headless Chromium): every picture decodes, the filter works.

Each test loads a copy of the page with a small probe appended (after the page's own script).
Once the page has loaded, the probe does what a reader would and writes what it saw into the DOM,
which Chromium then dumps (``--dump-dom``; ``--virtual-time-budget`` lets the page's timers and
image decodes finish first):

* the picture probe makes every lazily loaded ``<img>`` eager as the page is parsed (so that
  they all load before the load event), then draws each one onto a canvas, which decodes it,
  and lists those that did not load or drew nothing (a control run with one corrupted picture
  proves it sees them);
* the filter probe reads which cards are shown after the page applied the filter preset in its
  URL's query, then chooses other values in the controls (a ``change`` event, as a click
  would), then presses "show all".
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

from pytest_camcheck.report.html import write_report
from pytest_camcheck.report.records import Evidence

PICTURE_PROBE = """
<script>
// runs as the page is parsed: every lazily loaded picture loads now, and delays the load event
document.querySelectorAll("img").forEach(function (img) { img.loading = "eager"; });
window.addEventListener("load", function () {
  var imgs = document.images, broken = [], shown = 0, canvas = document.createElement("canvas");
  var ctx = canvas.getContext("2d", {willReadFrequently: true});
  canvas.width = canvas.height = 16;
  for (var i = 0; i < imgs.length; i++) {
    var ok = imgs[i].complete && imgs[i].naturalWidth > 0;
    if (ok) {  // drawing decodes the picture now: a picture that cannot be decoded draws nothing
      ctx.clearRect(0, 0, 16, 16);
      ctx.drawImage(imgs[i], 0, 0, 16, 16);
      var px = ctx.getImageData(0, 0, 16, 16).data, opaque = 0;
      for (var k = 3; k < px.length; k += 4) { if (px[k] > 0) { opaque++; } }
      ok = opaque === 256;
    }
    if (!ok) { broken.push(i); }
    else if (imgs[i].getBoundingClientRect().width > 0) { shown++; }
  }
  var out = document.createElement("pre");
  out.id = "camcheck-probe";
  out.textContent = "images=" + imgs.length + " shown=" + shown + " broken=" + broken.join(",") +
    " cards=" + document.querySelectorAll("article.card").length + " end";
  document.body.appendChild(out);
});
</script>
"""
PICTURE_LINE = re.compile(r"images=(\d+) shown=(\d+) broken=([\d,]*) cards=(\d+) end")

FILTER_PROBE = """
<script>
window.addEventListener("load", function () {
  var form = document.getElementById("filters"), steps = [];
  function look(label) {
    var shown = [];
    document.querySelectorAll("article.card").forEach(function (card) {
      if (!card.hidden && card.getBoundingClientRect().height > 0) { shown.push(card.id); }
    });
    steps.push({step: label, shown: shown, form_hidden: form.hidden,
                counter: document.getElementById("filter-count").textContent});
  }
  function choose(key, value) {
    var select = form.querySelector('select[data-filter="' + key + '"]');
    select.value = value;
    select.dispatchEvent(new Event("change"));
  }
  look("preset");
  choose("class", ""); choose("outcome", "xfailed"); look("outcome=xfailed");
  choose("outcome", ""); choose("check", "peak_in_box"); look("check=peak_in_box");
  form.reset();
  window.setTimeout(function () {
    look("reset");
    var out = document.createElement("pre");
    out.id = "camcheck-probe";
    out.textContent = "FILTER" + JSON.stringify(steps) + "END";
    document.body.appendChild(out);
  }, 50);
});
</script>
"""
FILTER_LINE = re.compile(r'<pre id="camcheck-probe">FILTER(.*?)END</pre>')


def load_pictures(probe_page: Callable[..., str], page: Path) -> tuple[int, int, list[int], int]:
    """(images, displayed images, indices of images that failed to decode, cards)."""
    match = PICTURE_LINE.search(probe_page(page, PICTURE_PROBE))
    assert match
    broken = [int(i) for i in match.group(3).split(",") if i]
    return int(match.group(1)), int(match.group(2)), broken, int(match.group(4))


def test_the_report_renders_with_every_image_decoded(probe_page, rh, tmp_path) -> None:
    records = [
        rh.make_case("t.py::test_cam[a]", severity=2.0),
        rh.make_case("t.py::test_cam[b]", outcome="xfailed", class_name=rh.XSS),
        rh.make_gate(),
    ]
    page = write_report(tmp_path / "report.html", rh.SUMMARY, records)
    images, shown, broken, cards = load_pictures(probe_page, page)
    # overview (energy histogram + class bars) + gate (histogram + class bars)
    # + 2 cards x (original + overlay + 2 strip tiles), the cards' pictures WebP
    assert images == 12 == len(rh.read_report(page).images)
    assert broken == []
    assert shown == images, "every image takes up space on the page"
    assert cards == 2


def test_the_browser_check_catches_a_broken_image(probe_page, rh, tmp_path) -> None:
    images = rh.case_images()
    # a WebP header followed by garbage instead of the VP8 frame: valid base64, no image
    images["overlay"] = images["overlay"][:40] + "A" * 400
    page = write_report(tmp_path / "report.html", {}, [rh.make_case(images=images)])
    count, _, broken, _ = load_pictures(probe_page, page)
    alts = [img.attrs["alt"] for img in rh.read_report(page).images]
    assert count == len(alts) == 6
    overlay_index = [i for i, alt in enumerate(alts) if alt.endswith("overlay on layer4")]
    assert broken == overlay_index and len(broken) == 1, "only the overlay fails to decode"


def filter_steps(probe_page: Callable[..., str], page: Path, query: str) -> dict[str, dict]:
    match = FILTER_LINE.search(probe_page(page, FILTER_PROBE, query))
    assert match
    return {step.pop("step"): step for step in json.loads(html.unescape(match.group(1)))}


def test_the_filter_hides_and_shows_cards(probe_page, rh, tmp_path) -> None:
    peak_miss = Evidence(
        check="peak_in_box",
        passed=False,
        metric="distance_px",
        value=3.0,
        threshold_name="tolerance",
        threshold=0.0,
        layer="layer3",
        message="the CAM peak lies 3 px outside region 'head'",
    )
    records = [
        rh.make_case("t.py::test[a]", severity=1.4, class_name="cat", images={}),
        rh.make_case("t.py::test[b]", severity=1.3, class_name="dog", images={}),
        rh.make_case(
            "t.py::test[p]", class_name="dog", layer="layer3", evidence=(peak_miss,), images={}
        ),
        rh.make_case("t.py::test[x]", outcome="xfailed", class_name="cat", images={}),
    ]
    page = write_report(tmp_path / "report.html", rh.SUMMARY, records)
    assert rh.read_report(page).card_nodeids() == [
        "t.py::test[a]",
        "t.py::test[b]",
        "t.py::test[p]",
        "t.py::test[x]",
    ]
    everything = ["case-0", "case-1", "case-2", "case-3"]

    steps = filter_steps(probe_page, page, "?class=dog")
    # the script revealed the controls and applied the preset from the query: dogs only
    assert steps["preset"] == {
        "shown": ["case-1", "case-2"],
        "form_hidden": False,
        "counter": "2 of 4 cards shown",
    }
    # other choices hide the rest and show again what they match
    assert steps["outcome=xfailed"]["shown"] == ["case-3"]
    assert steps["check=peak_in_box"]["shown"] == ["case-2"]
    # "show all" brings every card back
    assert steps["reset"]["shown"] == everything
    assert steps["reset"]["counter"] == "4 of 4 cards shown"

    # without a preset every card shows; a value no card has leaves its control at "all"
    assert filter_steps(probe_page, page, "")["preset"]["shown"] == everything
    two = filter_steps(probe_page, page, "?layer=layer3&class=unknown")
    assert two["preset"]["shown"] == ["case-2"]
