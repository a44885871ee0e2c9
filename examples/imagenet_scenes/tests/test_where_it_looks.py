"""Does EfficientNet-Lite0 look at the object it names, alone and in scenes of four photos?"""

from pytest_camcheck import assert_energy_in_region, assert_pass_rate, assert_peak_in_box


def test_peak_on_its_own_photo(camcheck_case):
    """In a scene, each class's map peaks on that class's photo (region "photo")."""
    assert_peak_in_box(camcheck_case.map, camcheck_case.regions["photo"])


def test_object_holds_more_than_its_share(camcheck_case):
    """The object holds twice the energy a flat map would give it, or half of it: a fixed 0.5
    would fail the rocket, which covers 2% of a scene (less than one 32 px map cell)."""
    obj = camcheck_case.regions["object"]
    share = float(obj.to_mask(*camcheck_case.map.shape).mean())
    assert_energy_in_region(camcheck_case.map, obj, min_fraction=min(0.5, 2 * share))


def test_labels_are_mapped_to_imagenet(camcheck_case):
    """camcheck_classes: the folder "cat" (label 0) is explained as ImageNet's output 285."""
    expected = {"cat": 285, "espresso": 967, "rocket": 657, "tripod": 872, "motorcycle": 665}
    assert camcheck_case.target == expected[camcheck_case.class_name]


def test_pointing_game(camcheck):
    """Dataset level: the peak within one map cell (32 px) of the object's box."""
    assert_pass_rate(camcheck.pointing_game(region="object", tolerance=32), min_rate=0.7)
