"""Each scene holds four ImageNet classes: does each class's map land on its own photo?"""

from pytest_camcheck import assert_pass_rate, assert_peak_in_box


def test_peak_on_its_own_photo(camcheck_case):
    """One item per (scene, class): test_peak_on_its_own_photo[scenes/scene_1/cat], ...
    The case's regions are its class's: "cat" (the object's box), "cat#1", and the part
    "photo" (the tile)."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["photo"])


def test_pointing_game(camcheck):
    """The pointing game of the literature: every (scene, class) pair against its own class's
    box, within 15 px of the model's 224 px input (the scenes are 448 px: 30 px of theirs)."""
    result = camcheck.pointing_game()
    assert_pass_rate(result, min_rate=0.6)
    assert set(result.per_class) == {"cat", "espresso", "motorcycle", "rocket", "tripod"}


def test_centre_baseline_is_beaten(camcheck):
    """A point at the centre of a 2 x 2 scene lies between the photos: it hits a class's box
    only when the box reaches the middle. The model must do better."""
    model = camcheck.pointing_game()
    centre = sum(
        case.regions[case.class_name].contains_pixel(112, 112, tolerance=15)
        for case in camcheck.cases()
    )
    assert model.passed > centre
