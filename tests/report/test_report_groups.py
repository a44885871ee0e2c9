"""Cards of one image's (image, class) pairs are shown together, under a heading for the image.

An image with objects of several classes gives one test item per (image, class) pair; its
records share an ``image_id``. The page keeps its worst-first order, but moves an image's pair
cards together, to the place of the image's worst card, under a heading that names the image and
its classes; each pair card says which class it explains. Single-label records look as before.
The last test drives the filter in headless Chromium (skipped without it, like
``test_report_browser.py``).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path

from pytest_camcheck.report.html import build_view, render_html, write_report
from pytest_camcheck.report.records import CaseRecord

IMG5 = "voc/000005"
IMG9 = "voc/000009"
HEADING5 = f"Image {IMG5} — 3 classes: chair (failed), sofa (xfailed), person (passed)"
HEADING9 = f"Image {IMG9} — 2 classes: dog (failed), cat (failed)"


def pair(rh, image: str, class_name: str, label: int, **kwargs) -> CaseRecord:
    """The record of one (image, class) pair, as the plugin writes it: the case id is
    ``image/class``, the label, class and CAM target are the pair's class."""
    case_id = f"{image}/{class_name}"
    kwargs.setdefault("images", {})
    return rh.make_case(
        f"t.py::test_pairs[{case_id}]",
        case_id=case_id,
        image_id=image,
        class_name=class_name,
        label=label,
        target=label,
        **kwargs,
    )


def single(rh, name: str, **kwargs) -> CaseRecord:
    kwargs.setdefault("images", {})
    return rh.make_case(f"t.py::test_single[{name}]", class_name="bird", label=2, **kwargs)


def group_records(rh) -> list[CaseRecord]:
    """Two images (3 and 2 pairs) among three single-label samples; by severity alone the order
    would be dog, s1, chair, s2, cat | sofa, s3 (xfailed) | person (passed)."""
    return [
        single(rh, "s1", severity=1.3),
        pair(rh, IMG5, "chair", 9, severity=1.2),
        single(rh, "s2", severity=1.15),
        pair(rh, IMG9, "cat", 8, severity=1.1),
        pair(rh, IMG5, "person", 15, outcome="passed"),
        single(rh, "s3", outcome="xfailed"),
        pair(rh, IMG9, "dog", 12, severity=1.45),
        pair(rh, IMG5, "sofa", 18, outcome="xfailed"),
        rh.make_gate(),
    ]


def ids(image: str, *classes: str) -> list[str]:
    return [f"t.py::test_pairs[{image}/{c}]" for c in classes]


def facts(card) -> dict[str, str]:
    table = card.find_all("table", "facts")[0]
    return {
        tr.find_all("th")[0].all_text(): tr.find_all("td")[0].all_text()
        for tr in table.find_all("tr")
    }


def groups_of(report) -> list[tuple[str, str, list[str]]]:
    """``(heading id, heading text, node ids of the cards inside)`` of each image group."""
    out = []
    for section in report.dom.find_all("section", "image-group"):
        (heading,) = section.find_all("h3", "image-heading")
        nodeids = [
            card.find_all("code", "nodeid")[0].all_text()
            for card in section.find_all("article", "card")
        ]
        out.append((heading.attrs["id"], heading.all_text(), nodeids))
    return out


def test_an_images_cards_follow_one_another_at_the_place_of_its_worst_card(rh, tmp_path) -> None:
    path = write_report(tmp_path / "r.html", rh.SUMMARY, group_records(rh), include_passed=True)
    report = rh.read_report(path)
    assert report.card_nodeids() == [
        *ids(IMG9, "dog", "cat"),  # dog is the worst card of all; cat (5th by severity) follows
        "t.py::test_single[s1]",
        *ids(IMG5, "chair", "sofa", "person"),  # chair ranks 3rd: the failed, xfailed, passed
        "t.py::test_single[s2]",
        "t.py::test_single[s3]",
    ]
    # each group is one element: its heading first, then exactly its cards
    assert groups_of(report) == [
        ("image-0", HEADING9, ids(IMG9, "dog", "cat")),
        ("image-1", HEADING5, ids(IMG5, "chair", "sofa", "person")),
    ]
    # ranks and anchors follow the order shown
    ranks = [card.find_all("span", "rank")[0].all_text() for card in report.cards]
    assert ranks == [f"#{i}" for i in range(1, 9)]
    assert [card.attrs["id"] for card in report.cards] == [f"case-{i}" for i in range(8)]
    # headings are not cards: the filter's counter and the card count ignore them
    assert len(report.cards) == 8


def test_the_failing_checks_list_links_to_the_cards_by_their_shown_rank(rh, tmp_path) -> None:
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, group_records(rh)))
    (toc,) = report.dom.find_all("nav", "toc")
    links = {
        details.find_all("b")[0].all_text(): [
            (a.attrs["href"], a.all_text()) for a in details.find_all("a")
        ]
        for details in toc.find_all("details")
    }
    assert links["energy_in_region @ layer4"] == [
        ("#case-0", f"#1 {IMG9}/dog"),
        ("#case-1", f"#2 {IMG9}/cat"),
        ("#case-2", "#3 s1"),
        ("#case-3", f"#4 {IMG5}/chair"),
        ("#case-5", "#6 s2"),  # case-4 is the chair group's xfailed sofa card: not listed
    ]
    ids_on_page = {el.attrs["id"] for el in report.dom.find_all() if "id" in el.attrs}
    assert {href[1:] for entry in links.values() for href, _ in entry} <= ids_on_page
    for href, label in links["energy_in_region @ layer4"]:
        (card,) = [c for c in report.cards if c.attrs["id"] == href[1:]]
        assert card.find_all("span", "rank")[0].all_text() == label.split()[0]


def test_the_heading_names_every_case_of_the_image_and_says_which_have_no_card(
    rh, tmp_path
) -> None:
    # without include_passed the person pair has no card, but the heading still names it
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, group_records(rh)))
    assert groups_of(report) == [
        ("image-0", HEADING9, ids(IMG9, "dog", "cat")),
        ("image-1", f"{HEADING5} (2 of its 3 cases shown as cards)", ids(IMG5, "chair", "sofa")),
    ]
    # max_cases picks the worst cards first, then groups them: cat (5th) is left out
    capped = rh.read_report(
        write_report(tmp_path / "c.html", rh.SUMMARY, group_records(rh), max_cases=3)
    )
    assert capped.card_nodeids() == [
        *ids(IMG9, "dog"),
        "t.py::test_single[s1]",
        *ids(IMG5, "chair"),
    ]
    assert [g[1] for g in groups_of(capped)] == [
        f"{HEADING9} (1 of its 2 cases shown as cards)",
        f"{HEADING5} (1 of its 3 cases shown as cards)",
    ]
    assert "4 more cases not shown (max_cases = 3)" in capped.text()


def test_one_class_tested_twice_is_named_once_with_both_outcomes(rh) -> None:
    energy = pair(rh, IMG5, "chair", 9, severity=1.2)
    peak = CaseRecord(
        **{**energy.__dict__, "nodeid": "t.py::test_peak[voc/000005/chair]", "outcome": "passed"}
    )
    other = pair(rh, IMG5, "person", 15, outcome="xfailed")
    view, _ = build_view(
        {}, [peak, other, energy], include_passed=True, plot_png=lambda *a, **k: None
    )
    (block,) = view.blocks
    assert block.image is not None and block.image.image_id == IMG5
    assert (
        block.image.heading == f"Image {IMG5} — 2 classes: chair (failed, passed), person (xfailed)"
    )
    assert block.image.note is None
    assert [c.nodeid for c in block.cases] == [energy.nodeid, other.nodeid, peak.nodeid]
    assert [c.nodeid for c in view.cases] == [c.nodeid for c in block.cases]


def test_a_pair_card_names_the_class_it_explains(rh, tmp_path) -> None:
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, group_records(rh)))
    by_title = {card.find_all("h3", "case-id")[0].all_text(): card for card in report.cards}
    chair = facts(by_title[f"{IMG5}/chair"])
    assert chair["Class"] == "9 (chair)" and "Label" not in chair
    assert chair["CAM target"] == "9"
    assert by_title[f"{IMG5}/chair"].attrs["data-class"] == "chair"
    s1 = facts(by_title["s1"])
    assert s1["Label"] == "2 (bird)" and "Class" not in s1


def test_user_text_in_a_group_is_escaped(rh, tmp_path) -> None:
    image = 'voc/<img src=x onerror="alert(2)">'
    records = [
        pair(rh, image, rh.XSS, 1, severity=1.4),
        pair(rh, image, "cat", 8, outcome="xfailed"),
    ]
    path = write_report(tmp_path / "r.html", rh.SUMMARY, records)
    text = path.read_text(encoding="utf-8")
    assert rh.XSS not in text and "alert(1)" in text  # shown, as text
    assert "<img src=x" not in text and "&lt;img src=x onerror=" in text
    report = rh.read_report(path)
    assert all(img.attrs["src"].startswith("data:image/") for img in report.dom.find_all("img"))
    assert not any(card.find_all("img") for card in report.cards), "none made of user text"
    assert len(report.dom.find_all("script")) == 1, "only the page's own filter script"
    ((anchor, heading, _),) = groups_of(report)
    assert anchor == "image-0", "the anchor is not made of user text"
    assert heading == f"Image {image} — 2 classes: {rh.XSS} (failed), cat (xfailed)"
    assert facts(report.cards[0])["Class"] == f"1 ({rh.XSS})"


def test_single_label_records_have_no_group_heading(rh, tmp_path) -> None:
    records = [r for r in group_records(rh) if getattr(r, "image_id", None) is None]
    assert len(records) == 4  # three cases and the gate
    view, _ = build_view(rh.SUMMARY, records, plot_png=lambda *a, **k: None)
    assert [b.image for b in view.blocks] == [None, None, None]
    assert [c for b in view.blocks for c in b.cases] == view.cases
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, records))
    assert not report.dom.find_all("section", "image-group")
    assert not report.dom.find_all("h3", "image-heading")
    assert 'class="image-heading"' not in report.html and " classes: " not in report.text()
    assert report.card_nodeids() == [f"t.py::test_single[{s}]" for s in ("s1", "s2", "s3")]
    # the cards sit where they always did: right in <main>, after the cases' heading
    (main,) = report.dom.find_all("main")
    assert [el for el in main.children if el.tag == "article"] == report.cards


def test_without_script_every_group_and_card_shows(rh, tmp_path) -> None:
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, group_records(rh)))
    sections = report.dom.find_all("section", "image-group")
    assert len(sections) == 2
    for el in [*sections, *report.cards, *report.dom.find_all("h3", "image-heading")]:
        assert "hidden" not in el.attrs
    (form,) = report.dom.find_all("form", "filters")
    assert "hidden" in form.attrs
    # the filter's choices count the pair cards' own classes
    (classes,) = [s for s in form.find_all("select") if s.attrs["data-filter"] == "class"]
    options = [o.attrs["value"] for o in classes.find_all("option")]
    assert options == ["", "bird", "cat", "chair", "dog", "sofa"]


def test_the_json_sidecar_carries_the_image_id(rh, tmp_path) -> None:
    records = group_records(rh)
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, records))
    got = {case["nodeid"]: case["image_id"] for case in report.data["cases"]}
    want = {r.nodeid: r.image_id for r in records if isinstance(r, CaseRecord)}
    assert got == want and len(got) == 8
    assert got["t.py::test_pairs[voc/000005/person]"] == IMG5
    assert got["t.py::test_single[s1]"] is None
    # rendering from the sidecar's dicts gives the same groups
    view, _ = build_view({}, report.data["cases"], plot_png=lambda *a, **k: None)
    assert [(b.image.heading, b.image.note) for b in view.blocks if b.image] == [
        (HEADING9, None),
        (HEADING5, "2 of its 3 cases shown as cards"),
    ]
    assert "image-group" in render_html(view)


# ---------------------------------------------------------------- in a browser

GROUP_PROBE = """
<script>
window.addEventListener("load", function () {
  var form = document.getElementById("filters"), steps = [];
  function visible(el) { return !el.closest("[hidden]") && el.getBoundingClientRect().height > 0; }
  function look(label) {
    function ids(selector) {
      var out = [];
      document.querySelectorAll(selector).forEach(function (el) {
        if (visible(el)) { out.push(el.id); }
      });
      return out;
    }
    var cards = ids("article.card"), headings = ids("h3.image-heading");
    steps.push({step: label, cards: cards, headings: headings,
                counter: document.getElementById("filter-count").textContent});
  }
  function choose(key, value) {
    var select = form.querySelector('select[data-filter="' + key + '"]');
    select.value = value;
    select.dispatchEvent(new Event("change"));
  }
  function finish() {
    var out = document.createElement("pre");
    out.id = "camcheck-probe";
    out.textContent = "GROUPS" + JSON.stringify(steps) + "END";
    document.body.appendChild(out);
  }
  look("preset");
  choose("class", ""); choose("outcome", "xfailed"); look("outcome=xfailed");
  choose("outcome", ""); choose("class", "bird"); look("class=bird");
  choose("class", "cat"); look("class=cat");
  choose("class", "dog");
  window.location.hash = "#image-1";  // a link to a hidden group's heading shows everything
  window.setTimeout(function () {
    look("hash");
    choose("class", "chair");
    form.reset();
    window.setTimeout(function () { look("reset"); finish(); }, 50);
  }, 50);
});
</script>
"""
GROUP_LINE = re.compile(r'<pre id="camcheck-probe">GROUPS(.*?)END</pre>')


def probe_groups(probe_page: Callable[..., str], page: Path, query: str) -> dict[str, dict]:
    """Open ``page`` (with ``query``) headless with :data:`GROUP_PROBE` appended; return what
    it saw at each step: the shown cards' and group headings' ids and the filter's counter."""
    match = GROUP_LINE.search(probe_page(page, GROUP_PROBE, query))
    assert match
    return {step.pop("step"): step for step in json.loads(html.unescape(match.group(1)))}


def test_the_filter_hides_the_heading_of_a_group_whose_cards_are_all_hidden(
    probe_page, rh, tmp_path
) -> None:
    records = group_records(rh)
    page = write_report(tmp_path / "report.html", rh.SUMMARY, records, include_passed=True)
    # case-0/1: voc/000009 dog, cat; case-2: s1; case-3/4/5: voc/000005 chair, sofa, person;
    # case-6: s2; case-7: s3 (xfailed)
    steps = probe_groups(probe_page, page, "?class=dog")
    assert steps["preset"] == {
        "cards": ["case-0"],
        "headings": ["image-0"],
        "counter": "1 of 8 cards shown",
    }
    assert steps["outcome=xfailed"] == {
        "cards": ["case-4", "case-7"],
        "headings": ["image-1"],
        "counter": "2 of 8 cards shown",
    }
    assert steps["class=bird"]["cards"] == ["case-2", "case-6", "case-7"]
    assert steps["class=bird"]["headings"] == [], "no group shows a card, so no heading shows"
    assert steps["class=cat"]["cards"] == ["case-1"]
    assert steps["class=cat"]["headings"] == ["image-0"]
    everything = [f"case-{i}" for i in range(8)]
    assert steps["hash"] == {
        "cards": everything,
        "headings": ["image-0", "image-1"],
        "counter": "8 of 8 cards shown",
    }
    assert steps["reset"] == steps["hash"]
