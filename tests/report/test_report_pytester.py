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

from pytest_camcheck.report.records import CaseRecord, GateRecord, record_from_dict

CONFTEST = textwrap.dedent(
    """
    import numpy as np
    import pytest

    from pytest_camcheck import evidence
    from pytest_camcheck.assertions import assert_pass_rate
    from pytest_camcheck.errors import CamAssertionError
    from pytest_camcheck.metrics import rate_result
    from pytest_camcheck.regions import Region
    from pytest_camcheck.report.collector import ReportCollector
    from pytest_camcheck.report.records import CaseRecord, Evidence, GateRecord, RegionInfo
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
        # a case record as the plugin makes it; ``fraction`` is the energy measured in 'head'
        # against 0.5, so the card's severity is 1.5 - fraction
        def record(outcome, fraction, case_id=None, render=True, **extra):
            node = request.node
            sample = case_id or node.name
            message = f"sample {sample}, layer layer4: only {fraction:.0%} of the energy"
            found = Evidence(
                check="energy_in_region", passed=False, metric="energy_fraction",
                value=fraction, threshold_name="min_fraction", threshold=0.5, sample=sample,
                layer="layer4", method="gradcam",
                region=RegionInfo("head", {"x0": 4.0, "y0": 4.0, "x1": 20.0, "y1": 20.0}),
                message=message,
            )
            fields = dict(
                nodeid=node.nodeid, case_id=sample, outcome=outcome or "failed",
                message=message, evidence=(found,), layer="layer4", method="gradcam",
                layers=("layer4", "layer3"), label=1, class_name="cat", prediction=0,
                prediction_name="dog", probability=0.8, path=f"data/{sample}.png",
                images=images(len(node.nodeid)) if render else {},
            )
            rec = CaseRecord(**{**fields, **extra}).to_dict()
            if outcome is None:  # leave the verdict to pytest
                del rec["outcome"]
            node.user_properties.append(("camcheck_case", rec))
        return record


    @pytest.fixture
    def record_gate(request):
        # the gate of a real assert_pass_rate; re-raises its failure
        def record(outcomes):
            n = len(outcomes)
            result = rate_result(
                "pointing_game[head, tol=15]", outcomes, [f"cat_{i:03d}" for i in range(n)],
                ["cat"] * n, layer="layer4", method="gradcam",
            )
            with evidence.collecting() as scope:
                try:
                    assert_pass_rate(result, 0.9)
                    error = None
                except CamAssertionError as exc:
                    error = exc
            (found,) = scope.items
            gate = GateRecord.from_evidence(request.node.nodeid, found, "failed")
            request.node.user_properties.append(("camcheck_gate", gate.to_dict()))
            if error is not None:
                raise error
        return record
    """
)

TESTS = textwrap.dedent(
    """
    import pytest

    XSS = "<script>alert(1)</script>"


    def test_passes(record_case):
        record_case("passed", 0.8, render=False)


    @pytest.mark.parametrize("sample", ["cat_001", "dog_002", XSS])
    def test_energy(record_case, sample):
        record_case("failed", 0.0 if sample == XSS else 0.3, case_id=sample, class_name=sample)
        assert False, f"sample {sample}: energy in 'head' 31% < 50%"


    @pytest.mark.xfail(reason="known watermark shortcut", strict=True)
    def test_known_shortcut(record_case):
        record_case("xfailed", 0.0)
        assert False


    def test_outcome_left_to_pytest(record_case):
        record_case(None, 0.4)
        raise AssertionError("peak outside 'head'")


    @pytest.fixture
    def broken_dataset(record_case):
        record_case(None, 0.45)
        raise RuntimeError("dataset missing")


    def test_setup_error(broken_dataset):
        pass


    def test_gate(record_gate):
        record_gate([True] * 45 + [False] * 5)


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
            rh.decode_image(img.attrs["src"])  # every picture decodes (WebP cards, PNG plots)
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
    assert report.html.lower().count("<script") == 1  # the card filter's; user text is escaped
    data = report.data
    assert data["schema_version"] == 2
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
    # every record in the sidecar reads back as a record of the schema
    for case in data["cases"]:
        record = record_from_dict(case)
        assert isinstance(record, CaseRecord) and record.nodeid == case["nodeid"]
        assert {k: v for k, v in record.to_dict().items() if k != "images"} == case
        assert record.evidence[0].check == "energy_in_region"
    assert by_id["test_cams.py::test_energy[cat_001]"]["severity"] == pytest.approx(1.2)
    (gate,) = [record_from_dict(g) for g in data["gates"]]
    assert isinstance(gate, GateRecord) and gate.outcome == "failed"
    assert (gate.passed, gate.count, gate.min_rate, gate.layer) == (45, 50, 0.9, "layer4")
    assert gate.message.startswith("pointing_game[head, tol=15]: lower 95% bound 78.6% < ")


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
