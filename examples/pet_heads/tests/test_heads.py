"""The head region dominates: where an ImageNet model looks on pet photos."""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


def head(case):
    """Oxford-IIIT Pet's VOC files name the head box by species: "cat" or "dog"."""
    return case.regions.get("cat") or case.regions["dog"]


def test_head_dominates(camcheck_case):
    """At least half of the map's energy lies on the head."""
    assert_energy_in_region(camcheck_case.map, head(camcheck_case), min_fraction=0.5)


def test_peak_on_the_pet(camcheck_case):
    """The peak lies on the pet (the trimap's pet pixels), within one map cell (32 px)."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["foreground"], tolerance=32)


def test_head_pointing_game(camcheck):
    """Dataset level: most peaks land on a head. With 4 photos the 95% interval is wide, so
    the gate asks for a rate, not for its lower bound; on the real dataset use bound="lower"."""
    result = camcheck.pointing_game(region="cat", missing="skip")
    assert_pass_rate(result, min_rate=0.75, bound="rate")
