"""Finding one's way through many cards, and what the pictures cost.

The page ranks the cards worst first, lists the failing checks with links to their cards, tags
every card with the values the filter matches, declares each picture's size and lets it load
lazily, and keeps the full-resolution overlay behind a click. What the filter script does in a
browser is checked in ``test_report_browser.py``; here the HTML is read as written.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from markupsafe import Markup

from pytest_camcheck.report.html import _data_uri, build_view, image_info, write_report
from pytest_camcheck.report.records import Evidence


def peak_evidence(layer: str = "layer3", sample: str = "cat_001") -> Evidence:
    """A failed ``peak_in_box`` check, as ``assert_peak_in_box`` records it."""
    return Evidence(
        check="peak_in_box",
        passed=False,
        metric="distance_px",
        value=14.0,
        threshold_name="tolerance",
        threshold=0.0,
        sample=sample,
        layer=layer,
        method="gradcam",
        message=f"sample {sample}, layer {layer}: the CAM peak lies 14 px outside region 'head'",
    )


def navigation_records(rh) -> list:
    """Six cases of two classes, two checks, two layers and four outcomes, plus a failing gate."""
    return [
        rh.make_case("t.py::test_e[a]", severity=1.2, class_name="cat", images={}),
        rh.make_case("t.py::test_e[b]", severity=1.4, class_name="dog", images={}),
        rh.make_case(
            "t.py::test_p[c]",
            class_name="dog",
            layer="layer3",
            images={},
            evidence=(peak_evidence(sample="c"), rh.energy_evidence(0.02, sample="c")),
        ),
        rh.make_case("t.py::test_x[d]", outcome="xfailed", class_name="cat", images={}),
        rh.make_case("t.py::test_err[e]", outcome="error", evidence=(), images={}),
        rh.make_case("t.py::test_ok[f]", outcome="passed", images={}),
        rh.make_gate(),
    ]


def test_cards_are_ranked_worst_first_and_tagged_for_the_filter(rh, tmp_path) -> None:
    path = write_report(tmp_path / "r.html", rh.SUMMARY, navigation_records(rh))
    report = rh.read_report(path)
    # c misses its energy by 0.48 (and its peak): worst; then b (0.4), a (0.2), the error
    assert report.card_nodeids() == [
        "t.py::test_p[c]",
        "t.py::test_e[b]",
        "t.py::test_e[a]",
        "t.py::test_err[e]",
        "t.py::test_x[d]",
    ]
    ranks = [card.find_all("span", "rank")[0].all_text() for card in report.cards]
    assert ranks == ["#1", "#2", "#3", "#4", "#5"]
    tags = [
        {k: card.attrs[k] for k in ("id", "data-class", "data-check", "data-layer", "data-outcome")}
        for card in report.cards
    ]
    assert tags[0] == {
        "id": "case-0",
        "data-class": "dog",
        "data-check": "peak_in_box energy_in_region",  # the checks that failed, in order
        "data-layer": "layer3",
        "data-outcome": "failed",
    }
    assert tags[3] == {
        "id": "case-3",
        "data-class": "cat",  # make_case's default class
        "data-check": "",  # an error before any check
        "data-layer": "layer4",
        "data-outcome": "error",
    }
    assert tags[4]["data-outcome"] == "xfailed" and tags[4]["data-check"] == "energy_in_region"
    assert not any("hidden" in card.attrs for card in report.cards), "every card shows"


def test_the_table_of_contents_links_failing_checks_to_their_cards(rh, tmp_path) -> None:
    records = navigation_records(rh)
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, records))
    (toc,) = report.dom.find_all("nav", "toc")
    entries = [
        (
            details.find_all("summary")[0].find_all("b")[0].all_text(),
            details.find_all("summary")[0].find_all("span")[0].all_text(),
            [(a.attrs["href"], a.all_text()) for a in details.find_all("a")],
        )
        for details in toc.find_all("details")
    ]
    # gates first; then the checks in the order of their worst card; xfailed cards not listed
    assert entries == [
        ("dataset gates", "1 gate", [("#gate-0", "energy[head] @ layer4")]),
        ("peak_in_box @ layer3", "1 card", [("#case-0", "#1 c")]),
        (
            "energy_in_region @ layer4",
            "3 cards",
            [("#case-0", "#1 c"), ("#case-1", "#2 b"), ("#case-2", "#3 a")],
        ),
        ("failures and errors without a failed camcheck check", "1 card", [("#case-3", "#4 e")]),
    ]
    # every link leads somewhere on the page
    ids = {el.attrs["id"] for el in report.dom.find_all() if "id" in el.attrs}
    for _, _, links in entries:
        assert {href[1:] for href, _ in links} <= ids
    (gate,) = report.dom.find_all("section", "gate")
    assert gate.attrs["id"] == "gate-0"
    notes = [span.all_text() for span in toc.find_all("ol")[1].find_all("span")]
    assert notes == [f"severity {records[2].severity:.4g}"]  # the peak check's card


def test_without_failures_there_is_no_table_of_contents(rh, tmp_path) -> None:
    records = [rh.make_case("t.py::x", outcome="xfailed", images={})]
    view, _ = build_view({}, records, plot_png=lambda *a, **k: None)
    assert view.toc == []
    report = rh.read_report(write_report(tmp_path / "r.html", {}, records))
    assert not report.dom.find_all("nav", "toc")


def test_the_filter_lists_every_value_and_is_revealed_only_by_the_script(rh, tmp_path) -> None:
    path = write_report(tmp_path / "r.html", rh.SUMMARY, navigation_records(rh))
    report = rh.read_report(path)
    (form,) = report.dom.find_all("form", "filters")
    assert "hidden" in form.attrs, "without script the controls stay hidden, the cards show"
    controls = {
        select.attrs["data-filter"]: [
            (option.attrs["value"], option.all_text()) for option in select.find_all("option")
        ]
        for select in form.find_all("select")
    }
    assert controls == {
        "class": [("", "all"), ("cat", "cat (3)"), ("dog", "dog (2)")],
        "check": [
            ("", "all"),
            ("energy_in_region", "energy_in_region (4)"),
            ("peak_in_box", "peak_in_box (1)"),
        ],
        "layer": [("", "all"), ("layer3", "layer3 (1)"), ("layer4", "layer4 (4)")],
        "outcome": [
            ("", "all"),
            ("failed", "failed (3)"),
            ("error", "error (1)"),
            ("xfailed", "xfailed (1)"),
        ],
    }
    # the script that reveals them is inline, reads those data-* attributes, and needs nothing
    (script,) = report.dom.find_all("script")
    code = script.all_text()
    assert 'getElementById("filters")' in code and 'getAttribute("data-" + key)' in code
    assert "form.hidden = false" in code and "URLSearchParams" in code


def test_no_cards_no_filter_and_no_script(rh, tmp_path) -> None:
    report = rh.read_report(write_report(tmp_path / "r.html", {}, [rh.make_gate()]))
    assert not report.dom.find_all("form") and not report.dom.find_all("script")
    assert "No failing cases." in report.text()


def test_the_full_resolution_overlay_is_one_click_away_only_when_rendered(rh, tmp_path) -> None:
    full = rh.make_case("t.py::full", images=rh.case_images(full_image=True), severity=1.4)
    plain = rh.make_case("t.py::plain")
    assert "full" in full.images and "full" not in plain.images
    report = rh.read_report(write_report(tmp_path / "r.html", rh.SUMMARY, [full, plain]))
    with_full, without = report.cards
    (details,) = with_full.find_all("details", "full")
    assert "open" not in details.attrs, "closed: its picture is drawn only when opened"
    assert details.find_all("summary")[0].all_text() == (
        "gradcam on layer4, full resolution (192 × 144 px)"
    )
    (img,) = details.find_all("img")
    assert rh.decode_image(img.attrs["src"], "image/webp").shape == (144, 192, 3)
    assert img.attrs["loading"] == "lazy"
    assert without.find_all("details") == []
    # the pictures outside the details are the same as without the full image
    assert len(with_full.find_all("img")) == len(without.find_all("img")) + 1


def test_the_json_sidecar_never_carries_pictures(rh, tmp_path) -> None:
    def sidecar(images) -> dict:
        case = rh.make_case("t.py::a", images=images)
        path = write_report(tmp_path / "r.html", rh.SUMMARY, [case, rh.make_gate()])
        data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        data.pop("generated")
        return data

    with_full = sidecar(rh.case_images(full_image=True))
    assert with_full == sidecar(rh.case_images()) == sidecar({})
    assert "images" not in with_full["cases"][0]


def test_a_card_of_about_30_kb_for_a_photo(rh, tmp_path) -> None:
    # what the issue asked for: display-size pictures of a real photo, 4-layer strip
    import skimage.data

    photo = cv2.resize(skimage.data.coffee()[:, 100:500], (480, 480), cv2.INTER_AREA)
    maps = {f"layer{i}": rh.blob(480, 480, 100 + 60 * i, 240, 40.0 + 10 * i) for i in range(4)}
    from pytest_camcheck.regions import Region
    from pytest_camcheck.report.render import render_case_images

    images = render_case_images(
        photo, maps, "layer3", [Region.from_box("cup", (60, 80, 420, 400))], (280, 240)
    )
    case = rh.make_case("t.py::photo", images=images, layers=tuple(maps), layer="layer3")
    one = write_report(tmp_path / "one.html", {}, [case]).stat().st_size
    none = write_report(tmp_path / "none.html", {}, [replace(case, images={})]).stat().st_size
    assert 10_000 < one - none < 45_000, one - none


# ---------------------------------------------------------------- pictures as data URIs


def encoded(img: np.ndarray, ext: str, params: list[int] | None = None) -> str:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok
    return base64.b64encode(buf.tobytes()).decode("ascii")


RNG = np.random.default_rng(7)
PICTURE = RNG.integers(0, 255, size=(37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("b64", "mime"),
    [
        (encoded(PICTURE, ".png"), "image/png"),
        (encoded(PICTURE, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]), "image/webp"),  # VP8
        (encoded(PICTURE, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), "image/webp"),  # VP8L
        (
            encoded(
                np.dstack([PICTURE, PICTURE[:, :, :1]]), ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]
            ),
            "image/webp",  # with alpha: VP8X
        ),
        (encoded(PICTURE, ".jpg"), "image/jpeg"),
        (encoded(PICTURE, ".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), "image/jpeg"),
    ],
)
def test_each_picture_gets_its_mime_type_and_size(b64: str, mime: str) -> None:
    assert image_info(b64) == (mime, 53, 37)
    uri = _data_uri(b64)
    assert isinstance(uri, Markup) and uri == f"data:{mime};base64,{b64}"


def test_the_webp_chunk_kinds_are_all_seen() -> None:
    kinds = {
        base64.b64decode(encoded(PICTURE, ".webp", [cv2.IMWRITE_WEBP_QUALITY, q]))[12:16]
        for q in (80, 101)
    }
    alpha = np.dstack([PICTURE, PICTURE[:, :, :1]])
    kinds.add(base64.b64decode(encoded(alpha, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 80]))[12:16])
    assert kinds == {b"VP8 ", b"VP8L", b"VP8X"}, "the parametrised cases cover every header"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        42,
        "",
        "not base64 at all",
        base64.b64encode(b"GIF89a" + bytes(40)).decode(),  # a format the report does not embed
        encoded(PICTURE, ".png")[:40] + '"><b>x</b>',  # markup after a valid header
        encoded(PICTURE, ".webp") + "&lt;",
    ],
)
def test_anything_else_is_not_embedded(bad) -> None:
    assert _data_uri(bad) is None


def test_a_picture_whose_size_is_out_of_reach_still_shows(rh, tmp_path) -> None:
    # a JPEG whose frame header lies past the bytes read for sizes: shown, without a size
    raw = base64.b64decode(encoded(PICTURE, ".jpg"))
    padded = raw[:2] + b"\xff\xfe" + (3000).to_bytes(2, "big") + bytes(2998) + raw[2:]
    b64 = base64.b64encode(padded).decode()
    assert image_info(b64) == ("image/jpeg", None, None)
    images = rh.case_images()
    images["original"] = b64
    report = rh.read_report(write_report(tmp_path / "r.html", {}, [rh.make_case(images=images)]))
    first = report.cards[0].find_all("img")[0]
    assert "width" not in first.attrs and first.attrs["alt"].endswith(": image")
    assert rh.decode_image(first.attrs["src"], "image/jpeg").shape == (37, 53, 3)
