"""Black-box runs: a pytest session whose tests leave camcheck records, plain and under xdist.

The project in the pytester directory registers a :class:`ReportCollector` itself (controller
only, like pytest's junitxml) and its tests append fake records to ``user_properties``, exactly
as the plugin does. Each run is parsed like pytest's own ``test_junitxml.run_and_parse``: the
HTML with ``html.parser``, every embedded PNG decoded, the JSON sidecar loaded.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

CONFTEST = textwrap.dedent(
    """
    import numpy as np
    import pytest

    from pytest_camcheck.regions import Region
    from pytest_camcheck.report.collector import ReportCollector
    from pytest_camcheck.report.render import render_case_images

    KEY = pytest.StashKey[ReportCollector]()


    def pytest_addoption(parser):
        parser.addoption("--fake-report", default=None)
        parser.addoption("--fake-report-all", action="store_true")
        parser.addoption("--fake-max-cases", type=int, default=200)


    def pytest_configure(config):
        path = config.getoption("--fake-report")
        if path and not hasattr(config, "workerinput"):
            collector = ReportCollector(
                path,
                include_passed=config.getoption("--fake-report-all"),
                max_cases=config.getoption("--fake-max-cases"),
                summary=lambda: {"model": "fake-net", "layers": ["layer4"], "device": "cpu"},
            )
            config.stash[KEY] = collector
            config.pluginmanager.register(collector, "fake-camcheck-report")


    def pytest_unconfigure(config):
        collector = config.stash.get(KEY, None)
        if collector is not None:
            del config.stash[KEY]
            config.pluginmanager.unregister(collector)


    def images(seed):
        rng = np.random.default_rng(seed)
        rgb = rng.integers(0, 255, size=(40, 56, 3), dtype=np.uint8)
        yy, xx = np.mgrid[:40, :56]
        maps = {
            "layer4": np.exp(-((yy - 10) ** 2 + (xx - 40) ** 2) / 50.0),
            "layer3": np.exp(-((yy - 30) ** 2 + (xx - 10) ** 2) / 80.0),
        }
        box = Region.from_box("head", (4, 4, 20, 20))
        return render_case_images(rgb, maps, "layer4", {"head": box}, (10, 40))


    @pytest.fixture
    def record_case(request):
        def record(outcome, severity, case_id=None, render=True, **extra):
            node = request.node
            rec = {
                "kind": "case",
                "nodeid": node.nodeid,
                "case_id": case_id or node.name,
                "message": f"sample {case_id or node.name}: energy in 'head' 31% < 50%",
                "evidence": [{"kind": "energy_in_region", "passed": False, "fraction": 0.31,
                              "min_fraction": 0.5, "region": "head"}],
                "path": f"data/{case_id or node.name}.png",
                "label": 1, "class_name": "cat", "prediction": 0, "prediction_name": "dog",
                "probability": 0.8, "method": "gradcam", "layer": "layer4",
                "layers": ["layer4", "layer3"], "degenerate": False,
                "metrics": {"energy_in[head]": 0.31},
                "severity": severity,
                "images": images(len(node.nodeid)) if render else {},
                **extra,
            }
            if outcome is not None:
                rec["outcome"] = outcome
            node.user_properties.append(("camcheck_case", rec))
        return record
    """
)

TESTS = textwrap.dedent(
    """
    import pytest

    XSS = "<script>alert(1)</script>"


    def test_passes(record_case):
        record_case("passed", 0.0, render=False)


    @pytest.mark.parametrize("sample", ["cat_001", "dog_002", XSS])
    def test_energy(record_case, sample):
        record_case("failed", 2.5 if sample == XSS else 0.7, case_id=sample, class_name=sample)
        assert False, f"sample {sample}: energy in 'head' 31% < 50%"


    @pytest.mark.xfail(reason="known watermark shortcut", strict=True)
    def test_known_shortcut(record_case):
        record_case("xfailed", 5.0)
        assert False


    def test_outcome_left_to_pytest(record_case):
        record_case(None, 0.5)
        raise AssertionError("peak outside 'head'")


    @pytest.fixture
    def broken_dataset(record_case):
        record_case(None, 0.2)
        raise RuntimeError("dataset missing")


    def test_setup_error(broken_dataset):
        pass


    def test_gate(request):
        request.node.user_properties.append(("camcheck_gate", {
            "kind": "gate", "nodeid": request.node.nodeid, "outcome": "failed",
            "message": "pointing_game: lower bound 78.6% < 90.0%",
            "name": "pointing_game[head, tol=15]", "passed": 45, "count": 50, "rate": 0.9,
            "lower": 0.786, "upper": 0.957, "confidence": 0.95, "min_rate": 0.9,
            "bound": "lower", "threshold": None, "values": [0.1, 0.5, 0.9],
            "per_class": {"cat": {"passed": 20, "count": 25, "rate": 0.8, "lower": 0.61,
                                  "upper": 0.91}},
            "failures": ["cat_001"],
        }))
        assert False, "pointing_game: lower bound 78.6% < 90.0%"


    def test_plain():
        pass
    """
)

EXPECTED_CARDS = [
    "test_cams.py::test_energy[<script>alert(1)</script>]",
    "test_cams.py::test_energy[cat_001]",
    "test_cams.py::test_energy[dog_002]",
    "test_cams.py::test_outcome_left_to_pytest",
    "test_cams.py::test_setup_error",
    "test_cams.py::test_known_shortcut",
]


@pytest.fixture
def run_and_parse(pytester: pytest.Pytester, rh) -> Callable[..., tuple[Any, Any]]:
    """Run the fake project with a report, return ``(RunResult, ParsedReport)``.

    Example::

        result, report = run_and_parse("-n", "2")
        assert len(report.cards) == 6
    """
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cams=TESTS)

    def run(*args: str) -> tuple[Any, Any]:
        path = pytester.path / "out" / "camcheck.html"
        result = pytester.runpytest("-p", "no:cacheprovider", f"--fake-report={path}", *args)
        report = rh.read_report(path)
        for img in report.images:
            rh.decode_png(img.attrs["src"])  # every embedded picture is a decodable PNG
        return result, report

    return run


def check_report(result: Any, report: Any, rh) -> None:
    result.assert_outcomes(passed=2, failed=5, errors=1, xfailed=1)
    result.stdout.fnmatch_lines(["*- camcheck report: *camcheck.html (5 failing cases, 1 gate) -*"])
    assert report.card_nodeids() == EXPECTED_CARDS
    outcomes = [sorted(card.classes - {"card"})[0] for card in report.cards]
    assert outcomes == ["failed"] * 4 + ["error", "xfailed"]
    for card in report.cards:
        assert len(card.find_all("img")) == 4  # original, overlay, two strip tiles
    assert rh.XSS in report.cards[0].all_text()
    assert "<script" not in report.html.lower()
    data = report.data
    assert data["schema_version"] == 1
    assert data["summary"] == {"model": "fake-net", "layers": ["layer4"], "device": "cpu"}
    by_id = {case["nodeid"]: case for case in data["cases"]}
    assert set(by_id) == {*EXPECTED_CARDS, "test_cams.py::test_passes"}
    assert by_id["test_cams.py::test_outcome_left_to_pytest"]["outcome"] == "failed"
    assert by_id["test_cams.py::test_setup_error"]["outcome"] == "error"
    assert by_id["test_cams.py::test_known_shortcut"]["outcome"] == "xfailed"
    assert all("images" not in case for case in data["cases"])
    assert [g["name"] for g in data["gates"]] == ["pointing_game[head, tol=15]"]
    assert data["counts"]["failed"] == 4 and data["counts"]["error"] == 1
    assert data["counts"]["passed"] == 1 and data["counts"]["xfailed"] == 1


def comparable(report: Any) -> dict[str, Any]:
    """What must not depend on how the run was distributed."""
    data = dict(report.data)
    data.pop("generated")
    data["cases"] = sorted(data["cases"], key=lambda c: c["nodeid"])
    cards = [
        (
            card.find_all("code", "nodeid")[0].all_text(),
            sorted(card.classes),
            [img.attrs["src"] for img in card.find_all("img")],
        )
        for card in report.cards
    ]
    return {"data": data, "cards": cards}


def test_plain_run(run_and_parse, rh) -> None:
    result, report = run_and_parse()
    check_report(result, report, rh)


def test_xdist_run_gives_the_same_report(run_and_parse, rh) -> None:
    pytest.importorskip("xdist")
    _, plain = run_and_parse()
    result, distributed = run_and_parse("-n", "2")
    result.stdout.fnmatch_lines(["*2 workers*"])  # really distributed
    check_report(result, distributed, rh)
    assert comparable(distributed) == comparable(plain)


def test_include_passed_and_max_cases(run_and_parse) -> None:
    _, report = run_and_parse("--fake-report-all", "--fake-max-cases=3")
    assert report.card_nodeids() == EXPECTED_CARDS[:3]
    assert "4 more cases not shown (max_cases = 3)" in report.text()
    _, report = run_and_parse("--fake-report-all")
    assert report.card_nodeids() == [*EXPECTED_CARDS, "test_cams.py::test_passes"]
    assert "No images were rendered" in report.cards[-1].all_text()


def test_no_report_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cams=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=5, errors=1, xfailed=1)
    result.stdout.no_fnmatch_line("*camcheck report:*")
    assert not (pytester.path / "out").exists()
