"""Is the model right for the right reason? Accuracy cannot tell; the maps can."""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate


def test_accurate(camcheck):
    """Both models pass this: accuracy alone does not catch the shortcut."""
    cases = list(camcheck.cases())
    accuracy = sum(c.prediction == c.label for c in cases) / len(cases)
    assert accuracy >= 0.9


def test_object_holds_the_energy(camcheck_case):
    """Per image: the shape holds a large share of the map (shapes cover about 25%)."""
    assert_energy_in_region(camcheck_case.map, camcheck_case.regions["object"], min_fraction=0.4)


def test_pointing_game(camcheck):
    """Dataset level: the map's peak lies on the shape, on the lower 95% bound."""
    assert_pass_rate(camcheck.pointing_game(region="object", tolerance=4), min_rate=0.8)


def test_peak_not_on_the_watermark(camcheck):
    """Where a watermark is drawn, the map's peak is rarely on it (images without one are left
    out). The watermark is small (1.6% of the image): its share of the energy says less than
    where the peak is, see docs/assertions.md."""
    hits = camcheck.pointing_game(region="watermark", tolerance=4, missing="skip")
    assert hits.rate <= 0.2, f"{hits.passed} of {hits.count} peaks lie on the watermark"


def test_maps_match_the_clean_baseline(camcheck):
    """Regression: the maps stay where the last good (clean) model's maps were. The baseline in
    tests/camcheck-baselines was written by the clean model; a retrain that learns the watermark
    moves its maps and fails here. After an intended change: pytest --camcheck-update-baselines."""
    assert_pass_rate(camcheck.baseline_comparison(min_ssim=0.8), min_rate=0.9)
