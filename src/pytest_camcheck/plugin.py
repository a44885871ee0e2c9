"""The pytest surface of pytest-camcheck: options, ini keys, marker, header, hooks, fixtures.

This module is imported by every pytest run in an environment where pytest-camcheck is
installed, so it imports neither torch nor jinja2: the heavy modules load inside fixtures and
hooks, only when camcheck is used.
"""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from . import evidence
from ._spec import looks_like_spec
from .errors import CamcheckError, ConfigError, DataError
from .settings import MARKER_KEYS, OPTIONS, Settings, settings_from

if TYPE_CHECKING:  # pragma: no cover
    from .session import CamCase, CamCheck

SETTINGS_KEY = pytest.StashKey[Settings]()
DATASET_KEY = pytest.StashKey[Any]()
DEVICE_KEY = pytest.StashKey[tuple[Any, str]]()
COLLECTOR_KEY = pytest.StashKey[Any]()
CASE_KEY = pytest.StashKey["CamCase"]()
SCOPE_KEY = pytest.StashKey[evidence.EvidenceScope]()
CHECK_KEY = pytest.StashKey["CamCheck"]()
PROBLEM_KEY = pytest.StashKey[str]()
WANTED_KEY = pytest.StashKey[list[str]]()
RUN_KEY = pytest.StashKey[str]()
STORE_KEY = pytest.StashKey[Any]()
AGREEMENT_KEY = pytest.StashKey[dict[str, bool]]()

CASE_FIXTURE = "camcheck_case"


# ------------------------------------------------------------------------------------------
# options, ini keys, marker


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("camcheck", "class activation map checks (pytest-camcheck)")
    for opt in OPTIONS:
        if opt.flag:
            group.addoption(
                opt.cli,
                action="store_true",
                default=None,
                dest=opt.ini,
                help=f"{opt.help} (ini: {opt.ini})",
            )
            # a string, parsed by camcheck: a bad value then names its key
            parser.addini(opt.ini, f"{opt.help} (true/false)", type="string", default="")
        else:
            group.addoption(
                opt.cli,
                action="store",
                default=None,
                dest=opt.ini,
                metavar=opt.name.upper(),
                help=f"{opt.help} (ini: {opt.ini})",
            )
            parser.addini(opt.ini, opt.help, type="string", default="")
    group.addoption(
        "--camcheck-layers",
        action="store_true",
        default=False,
        dest="camcheck_show_layers",
        help="print the configured model's candidate CAM layers (name, type, output shape, map "
        "cell size, the auto-detected one) and exit, as --fixtures does",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``pytest --camcheck-layers``: list the model's layers and exit."""
    if not config.getoption("camcheck_show_layers", False):
        return None
    from .layers_cli import show_layers

    return show_layers(config)


def _worker_id(config: pytest.Config) -> str | None:
    winput = getattr(config, "workerinput", None)
    return None if winput is None else str(winput.get("workerid"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "camcheck(**options): per-test camcheck settings, overriding CLI and ini "
        f"({', '.join(MARKER_KEYS)})",
    )
    try:
        settings = settings_from(config.getoption, config.getini)
    except CamcheckError as exc:
        raise pytest.UsageError(f"camcheck: {exc}") from None
    config.stash[SETTINGS_KEY] = settings
    # every process of one run shares its id (xdist hands the controller's to its workers): a
    # baseline written by this run is never compared against in the same run
    winput = getattr(config, "workerinput", None) or {}
    config.stash[RUN_KEY] = str(winput.get("testrunuid") or uuid.uuid4().hex)
    if settings.report and _worker_id(config) is None:
        from .report.collector import ReportCollector
        from .report.files import check_report_path

        inputs = [settings.dataset, settings.annotations, settings.weights, settings.model]
        try:
            path = check_report_path(
                settings.report,
                Path(config.rootpath),
                [i for i in inputs if i and not looks_like_spec(i)],
            )
        except CamcheckError as exc:
            raise pytest.UsageError(f"camcheck: {exc}") from None
        collector = ReportCollector(
            path,
            include_passed=settings.report_all,
            max_cases=settings.report_max_cases,
            summary=lambda: _summary(config, collector.records()),
        )
        config.stash[COLLECTOR_KEY] = collector
        config.pluginmanager.register(collector, "camcheck-report")


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR_KEY, None)
    if collector is not None:
        del config.stash[COLLECTOR_KEY]
        config.pluginmanager.unregister(collector)


def _config_error(config: pytest.Config, message: str) -> NoReturn:
    """Stop the session on a configuration problem found while setting up a fixture.

    Configuration problems affect every camcheck test, so one clear message and exit code 4
    (usage error) beat a traceback per test item. An xdist worker cannot end the session
    (xdist would report an INTERNALERROR), so there the item fails with the same one line; the
    controller's start-up check (:func:`pytest_sessionstart`) normally stops the run first.
    """
    if _worker_id(config) is not None:
        pytest.fail(f"camcheck: {message}", pytrace=False)
    pytest.exit(f"camcheck: {message}", returncode=pytest.ExitCode.USAGE_ERROR)


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to xdist workers (``-n N`` with N > 0)."""
    if _worker_id(config) is not None:
        return False
    n = getattr(config.option, "numprocesses", None)
    return bool(n) and getattr(config.option, "dist", "no") != "no"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under xdist, check the configuration once on the controller before any worker starts,
    so a bad model, weights file, dataset, device or layer ends the run with one line (exit
    code 4), exactly as a plain run does, instead of failing on every worker."""
    config = session.config
    if not _xdist_controller(config) or config.option.collectonly:
        return
    s = _settings(config)
    if not (s.model or s.dataset):
        return
    problem = None
    try:
        device = _device(config)[0]
        if s.dataset:
            _load_dataset(config)
        if s.model:
            from .cam.layers import resolve_layers
            from .loading import load_model

            model = load_model(
                s.model,
                kwargs=s.model_kwargs,
                weights=s.weights,
                trust_weights=s.trust_weights,
                device="cpu" if device.type == "cuda" else device,
                rootdir=Path(config.rootpath),
            )
            if s.layer:
                try:
                    resolve_layers(model, list(s.layer))
                except CamcheckError as exc:
                    raise ConfigError(f"camcheck_layer: {exc}") from None
            if s.dataset:  # the class mapping and a named target, checked once here
                from .classes import resolve_target

                classes = _class_map(config, model, _load_dataset(config))
                if s.target not in ("label", "predicted"):
                    resolve_target(s.target, classes, model)
            del model
        if s.has_reference:
            _load_reference(config, "cpu" if device.type == "cuda" else device)
    except CamcheckError as exc:
        problem = f"camcheck: {exc}"
    if problem is not None:
        pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


def _settings(config: pytest.Config) -> Settings:
    return config.stash[SETTINGS_KEY]


def _device(config: pytest.Config) -> tuple[Any, str]:
    """(torch.device, reason), resolved once per session; raises ConfigError."""
    if DEVICE_KEY not in config.stash:
        from .loading import resolve_device

        config.stash[DEVICE_KEY] = resolve_device(_settings(config).device, _worker_id(config))
    return config.stash[DEVICE_KEY]


def _versions() -> dict[str, str]:
    from . import __version__

    out = {
        "python": sys.version.split()[0],
        "pytest": pytest.__version__,
        "pytest-camcheck": __version__,
    }
    for mod in ("torch", "torchvision", "captum"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = str(getattr(m, "__version__", "?"))
    return out


def _summary(config: pytest.Config, records: list[dict[str, Any]]) -> dict[str, Any]:
    s = _settings(config)
    # The resolved layer names come from the cases (computed here or on xdist workers).
    seen = [r["layers"] for r in records if r.get("kind") == "case" and r.get("layers")]
    layers = seen[0] if seen else (list(s.layer) if s.layer else ["auto"])
    device = config.stash.get(DEVICE_KEY, None)
    return {
        "model": s.model or "(fixture)",
        "model_kwargs": dict(s.model_kwargs),
        "weights": s.weights,
        "dataset": s.dataset or "(fixture)",
        "annotations": s.annotations,
        "layers": list(layers),
        "method": s.method,
        "device": str(device[0]) if device else s.device,
        "target": s.target,
        "thresholds": {"peak_tolerance": s.peak_tolerance, "min_energy": s.min_energy},
        "settings": {**s.as_dict(), "num_workers": s.workers},
        "versions": _versions(),
        "warnings": [w for w in (_agreement_warning(config),) if w],
        **({"classes": _classes_text(s)} if s.classes is not None else {}),
    }


def _classes_text(s: Settings) -> str | None:
    """How the header and the report name ``camcheck_classes``."""
    if s.classes is None:
        return None
    if isinstance(s.classes, dict):
        pairs = [f"{k} -> {v}" for k, v in s.classes.items()]
        return ", ".join(pairs[:6]) + (f", ... ({len(pairs)} classes)" if len(pairs) > 6 else "")
    return str(s.classes)


def _agreement_warning(config: pytest.Config) -> str | None:
    """The warning when labels and predictions agree less than chance (this process's samples
    and, on an xdist controller, every worker's)."""
    from .classes import agreement_warning

    pairs = dict(config.stash.get(AGREEMENT_KEY, {}))
    store = config.stash.get(STORE_KEY, None)
    if store is not None:
        pairs.update({str(k): v for k, v in store.label_predictions.items()})
    return agreement_warning(list(pairs.values()), mapped=_settings(config).classes is not None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its samples' labels and predictions to the controller."""
    config = session.config
    store = config.stash.get(STORE_KEY, None)
    workeroutput = getattr(config, "workeroutput", None)
    if store is not None and workeroutput is not None:
        workeroutput["camcheck_labels"] = {
            str(k): list(v) for k, v in store.label_predictions.items()
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist: gather a finished worker's labels and predictions."""
    got = getattr(node, "workeroutput", {}).get("camcheck_labels")
    if isinstance(got, dict):
        held = node.config.stash.setdefault(AGREEMENT_KEY, {})
        held.update({str(k): (int(v[0]), int(v[1])) for k, v in got.items()})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Warn when labels and predictions agree less than chance (wrong class mapping?)."""
    if _worker_id(config) is not None or SETTINGS_KEY not in config.stash:
        return
    warning = _agreement_warning(config)
    if warning is not None:
        terminalreporter.write_sep("-", "camcheck warning", yellow=True)
        terminalreporter.write_line(f"camcheck: {warning}", yellow=True)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    s = _settings(config)
    if not s.model:
        return None
    import torch

    try:
        device, why = _device(config)
    except CamcheckError as exc:
        raise pytest.UsageError(f"camcheck: {exc}") from None
    layer = ",".join(s.layer) if s.layer else "auto"
    lines = [
        f"camcheck: model {s.model}" + (f" (weights {s.weights})" if s.weights else ""),
        f"camcheck: device {device} ({why}), layer {layer}, method {s.method}, "
        f"target {s.target}, torch {torch.__version__}",
    ]
    if s.has_reference:
        spec, _ = s.reference_spec()
        weights = f" (weights {s.reference_weights})" if s.reference_weights else ""
        lines.append(f"camcheck: reference model {spec}{weights}")
    if s.classes is not None:
        lines.append(f"camcheck: classes {_classes_text(s)} (dataset class -> model output)")
    return lines


# ------------------------------------------------------------------------------------------
# collection: one item per sample for tests using camcheck_case


def _class_map(config: pytest.Config, model: Any, dataset: Any) -> Any:
    """The ``camcheck_classes`` mapping for this model and dataset (None when unset); raises
    ConfigError listing the classes it cannot map."""
    s = _settings(config)
    if s.classes is None:
        return None
    from .classes import build_class_map

    return build_class_map(
        s.classes, getattr(dataset, "class_names", None), model, Path(config.rootpath)
    )


def _size_given(config: pytest.Config) -> bool:
    """Whether camcheck_image_size was set (else a model source's own input size wins)."""
    key = "camcheck_image_size"
    return config.getoption(key) is not None or bool(str(config.getini(key)).strip())


def _load_dataset(config: pytest.Config) -> Any:
    """The configured dataset (built once per session); raises ConfigError/DataError."""
    if DATASET_KEY not in config.stash:
        s = _settings(config)
        if not s.dataset:
            raise ConfigError(
                "no dataset configured; set camcheck_dataset in [tool.pytest.ini_options] "
                '(a folder of images or "package.module:factory") or pass --camcheck-dataset'
            )
        from .inputs import build_configured_dataset

        ds = build_configured_dataset(s, Path(config.rootpath), _size_given(config))
        if len(ds) == 0:
            raise DataError(f"the dataset {s.dataset!r} is empty")
        config.stash[DATASET_KEY] = ds
    return config.stash[DATASET_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if CASE_FIXTURE not in metafunc.fixturenames:
        return
    try:
        ids = _item_ids(metafunc, _load_dataset(metafunc.config))
    except CamcheckError as exc:
        # Reported once, as a usage error, when collection finishes (see below).
        metafunc.config.stash[PROBLEM_KEY] = str(exc)
        ids = []
    metafunc.parametrize(CASE_FIXTURE, ids, ids=ids, indirect=True, scope="function")


def _item_ids(metafunc: pytest.Metafunc, dataset: Any) -> list[str]:
    """The per-sample ids: sample ids, or ``<image id>/<class>`` for each class present in an
    image with objects of several classes when the test's maps explain the labels."""
    if not getattr(dataset, "multi_object", False):
        return list(dataset.ids)
    target = _settings(metafunc.config).target
    for mark in metafunc.definition.iter_markers("camcheck"):  # the closest marker wins
        if "target" in mark.kwargs:
            target = mark.kwargs["target"]
            break
    from .store import dataset_units

    return [u for u, _, _ in dataset_units(dataset, target == "label")]


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    problem = config.stash.get(PROBLEM_KEY, None)
    if problem is not None:
        raise pytest.UsageError(f"camcheck: {problem}")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember which samples the selected per-sample items need (after -k, --lf, node ids),
    so that only their batches are computed."""
    wanted = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and CASE_FIXTURE in callspec.params:
            wanted.append(str(callspec.params[CASE_FIXTURE]))
    session.config.stash[WANTED_KEY] = wanted


# ------------------------------------------------------------------------------------------
# fixtures (thin: the work happens in session.py)


@pytest.fixture(scope="session")
def camcheck_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved camcheck settings (ini < CLI; markers apply per test).

    Example:
        def test_threshold(camcheck_settings):
            assert camcheck_settings.min_energy == 0.5
    """
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def camcheck_device(pytestconfig: pytest.Config) -> Any:
    """The ``torch.device`` camcheck runs on (CUDA when available, else CPU).

    Example:
        def test_on_gpu(camcheck_device):
            assert camcheck_device.type in ("cpu", "cuda")
    """
    try:
        return _device(pytestconfig)[0]
    except CamcheckError as exc:
        _config_error(pytestconfig, str(exc))


@pytest.fixture(scope="session")
def camcheck_model(pytestconfig: pytest.Config, camcheck_device: Any) -> Any:
    """The model named by ``camcheck_model`` (+ ``camcheck_weights``), on the device, in eval.

    Override it in your conftest.py to build the model yourself:

        @pytest.fixture(scope="session")
        def camcheck_model(camcheck_device):
            return MyNet().to(camcheck_device).eval()
    """
    s = _settings(pytestconfig)
    if not s.model:
        _config_error(
            pytestconfig,
            'no model configured; set camcheck_model (e.g. "mypkg.models:build" or '
            '"torchvision:resnet18") or override the camcheck_model fixture',
        )
    from .loading import load_model

    try:
        return load_model(
            s.model,
            kwargs=s.model_kwargs,
            weights=s.weights,
            trust_weights=s.trust_weights,
            device=camcheck_device,
            rootdir=Path(pytestconfig.rootpath),
        )
    except CamcheckError as exc:
        _config_error(pytestconfig, str(exc))


@pytest.fixture(scope="session")
def camcheck_dataset(pytestconfig: pytest.Config) -> Any:
    """The annotated dataset named by ``camcheck_dataset`` / ``camcheck_annotations``.

    Example:
        def test_size(camcheck_dataset):
            assert len(camcheck_dataset) > 0
    """
    try:
        return _load_dataset(pytestconfig)
    except CamcheckError as exc:
        _config_error(pytestconfig, str(exc))


def _reference_error(message: str) -> str:
    """A loading error of the reference model, naming its own keys."""
    return re.sub(r"\bcamcheck_(model_kwargs|model|weights)\b", r"camcheck_reference_\1", message)


def _load_reference(config: pytest.Config, device: Any) -> Any:
    """The configured reference model on ``device``; raises ConfigError."""
    from .loading import load_model

    s = _settings(config)
    spec, kwargs = s.reference_spec()
    if not spec:
        raise ConfigError(
            "camcheck_reference_weights is set but there is no model spec to load it into: set "
            "camcheck_reference_model (or camcheck_model), or override the "
            "camcheck_reference_model fixture"
        )
    try:
        return load_model(
            spec,
            kwargs=kwargs,
            weights=s.reference_weights,
            trust_weights=s.trust_weights,
            device=device,
            rootdir=Path(config.rootpath),
        )
    except CamcheckError as exc:
        raise ConfigError(_reference_error(str(exc))) from None


@pytest.fixture(scope="session")
def camcheck_reference_model(pytestconfig: pytest.Config, camcheck_device: Any) -> Any:
    """The reference (deployed) model, compared with the tested one; None when none is set.

    ``camcheck_reference_model`` names its spec (default: ``camcheck_model``) and
    ``camcheck_reference_weights`` its weights. Override it to build it yourself:

        @pytest.fixture(scope="session")
        def camcheck_reference_model(camcheck_device):
            return MyNet.from_checkpoint("deployed.pt").to(camcheck_device).eval()
    """
    if not _settings(pytestconfig).has_reference:
        return None
    try:
        return _load_reference(pytestconfig, camcheck_device)
    except CamcheckError as exc:
        _config_error(pytestconfig, str(exc))


class _Progress:
    """Prints progress of the batched pass when it takes longer than a couple of seconds."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int, elapsed: float) -> None:
        if _worker_id(self.config) is not None or self.config.option.verbose < -1:
            return
        if elapsed < 2.0 and not self.shown:
            return
        if done < total and elapsed - self.last < 1.0:
            return
        self.last = elapsed
        self.shown = True
        rate = done / elapsed if elapsed > 0 else 0.0
        line = (
            f"camcheck: CAMs {done}/{total} images ({100 * done // total}%), "
            f"{elapsed:.1f} s, {rate:.0f} img/s"
        )
        capman = self.config.pluginmanager.getplugin("capturemanager")
        tw = self.config.get_terminal_writer()
        ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with ctx:
            tw.line(line)


@pytest.fixture(scope="session")
def camcheck_session(
    pytestconfig: pytest.Config,
    camcheck_model: Any,
    camcheck_dataset: Any,
    camcheck_device: Any,
    camcheck_reference_model: Any,
) -> CamCheck:
    """The session-wide :class:`~pytest_camcheck.CamCheck` (CLI/ini settings, no marker).

    With a reference model, its maps come from the same batched passes (``camcheck.reference``).

    Example:
        @pytest.fixture(scope="session")
        def head_rate(camcheck_session):
            return camcheck_session.pointing_game(region="head")
    """
    from .baseline import Baselines
    from .cam.layers import resolve_layers
    from .session import CamCheck
    from .store import BatchStore

    s = _settings(pytestconfig)
    if s.layer:
        try:
            resolve_layers(camcheck_model, list(s.layer))
        except CamcheckError as exc:
            _config_error(pytestconfig, f"camcheck_layer: {exc}")
    try:
        classes = _class_map(pytestconfig, camcheck_model, camcheck_dataset)
    except CamcheckError as exc:
        _config_error(pytestconfig, str(exc))
    keep_images = bool(s.report) or bool(getattr(pytestconfig.option, "htmlpath", None))
    store = BatchStore(
        camcheck_model,
        camcheck_dataset,
        camcheck_device,
        num_workers=s.workers,
        progress=_Progress(pytestconfig),
        keep_images=keep_images,
        classes=classes,
    )
    if s.target not in ("label", "predicted"):  # a class name or index: check it now
        try:
            store.target_index(s.target)
        except CamcheckError as exc:
            _config_error(pytestconfig, str(exc))
    pytestconfig.stash[STORE_KEY] = store
    if _worker_id(pytestconfig) is None:  # an xdist worker does not know its share in advance
        wanted = pytestconfig.stash.get(WANTED_KEY, [])
        index = {uid: i for uid, i, _ in store.units(True)}
        index.update((sid, i) for i, sid in enumerate(camcheck_dataset.ids))
        store.want(index[w] for w in wanted if w in index)
    if camcheck_reference_model is not None:  # loaded with the same images, batch by batch
        BatchStore(
            camcheck_reference_model,
            camcheck_dataset,
            camcheck_device,
            num_workers=s.workers,
            leader=store,
        )
    baselines = Baselines(
        Path(pytestconfig.rootpath) / s.baseline_dir,
        update=s.update_baselines,
        run_id=pytestconfig.stash[RUN_KEY],
    )
    return CamCheck(None, settings=s, store=store, baselines=baselines)


def _marker_settings(item: pytest.Item) -> Settings:
    s = _settings(item.config)
    kwargs: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("camcheck"))):  # closest marker wins
        if mark.args:
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.camcheck takes keyword arguments only "
                f"({', '.join(MARKER_KEYS)})",
                pytrace=False,
            )
        kwargs.update(mark.kwargs)
    if not kwargs:
        return s
    try:
        return s.with_marker(kwargs)
    except CamcheckError as exc:
        pytest.fail(f"{item.nodeid}: {exc}", pytrace=False)


@pytest.fixture
def camcheck(request: pytest.FixtureRequest, camcheck_session: CamCheck) -> CamCheck:
    """The dataset and its CAMs, for dataset-level checks (one test item for the dataset).

    Example:
        from pytest_camcheck import assert_pass_rate

        def test_pointing_game(camcheck):
            assert_pass_rate(camcheck.pointing_game(region="head", tolerance=15), min_rate=0.9)
    """
    check = camcheck_session.configured(_marker_settings(request.node))
    request.node.stash[CHECK_KEY] = check
    return check


@pytest.fixture
def camcheck_case(request: pytest.FixtureRequest, camcheck_session: CamCheck) -> CamCase:
    """One sample and its maps; tests using it run once per sample (``test_x[<sample id>]``).

    Example:
        from pytest_camcheck import assert_energy_in_region

        def test_head_dominates(camcheck_case):
            assert_energy_in_region(camcheck_case.map, camcheck_case.regions["head"],
                                    min_fraction=0.5)
    """
    check = camcheck_session.configured(_marker_settings(request.node))
    request.node.stash[CHECK_KEY] = check
    problem = None
    try:
        case = check.case(request.param)
    except CamcheckError as exc:
        problem = f"camcheck: {exc}"
    if problem is not None:  # outside the except block: no chained traceback
        pytest.fail(problem, pytrace=False)
    request.node.stash[CASE_KEY] = case
    return case


# ------------------------------------------------------------------------------------------
# evidence and report records


def _uses_camcheck(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return CASE_FIXTURE in names or "camcheck" in names


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    if not _uses_camcheck(item):
        return (yield)
    case = item.stash.get(CASE_KEY, None)
    check = item.stash.get(CHECK_KEY, None)
    settings = check.settings if check is not None else _settings(item.config)
    with evidence.collecting(
        case.id if case is not None else None,
        maps=case.maps if case is not None else None,
        method=settings.method,
        target=case.target if case is not None else None,
        defaults={"peak_tolerance": settings.peak_tolerance, "min_energy": settings.min_energy},
        run_method=_settings(item.config).method,
        raw=case.raw if case is not None else None,
    ) as scope:
        item.stash[SCOPE_KEY] = scope
        return (yield)


def _message(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str | None:
    from .report.records import failure_message

    if call.excinfo is not None:
        return failure_message(str(call.excinfo.value), call.excinfo.typename)
    if report.failed and report.longreprtext:
        return report.longreprtext.strip().splitlines()[-1]
    return None


def _case_record(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], outcome: str
) -> Any:
    """The report record of a per-sample item, from plain values of its case and evidence."""
    from . import metrics
    from .report.records import CaseRecord

    case: CamCase = item.stash[CASE_KEY]
    check = item.stash.get(CHECK_KEY, None)
    scope = item.stash.get(SCOPE_KEY, None)
    found = tuple(scope.items) if scope is not None else ()
    # the card draws the map its first failing assertion measured (else the test's layer)
    failing = [e for e in found if not e.passed and e.layer in case.maps]
    shown = failing[0] if failing else None
    layer = shown.layer if shown is not None and shown.layer else case.layer
    settings = check.settings if check is not None else _settings(item.config)
    record = CaseRecord(
        nodeid=item.nodeid,
        case_id=case.id,
        image_id=case.image_id,
        outcome=outcome,
        message=_message(report, call),
        evidence=found,
        layer=layer,
        method=case.method,
        layers=tuple(case.layers),
        target=case.target,
        label=case.label,
        class_name=case.class_name,
        prediction=case.prediction,
        prediction_name=case.prediction_name,
        probability=case.probability,
        path=case.path,
        degenerate=bool(metrics.is_degenerate_map(case.maps[layer])),
        settings={
            k: v
            for k, v in settings.as_dict().items()
            if k in ("layer", "method", "target", "peak_tolerance", "min_energy")
        },
    )
    render = settings.report_all or outcome in ("failed", "xfailed", "error")
    if render:
        from dataclasses import replace

        from .report.render import render_case_images

        if shown is not None and shown.peak is not None:
            peak: tuple[int, int] | None = (shown.peak.row, shown.peak.col)
        else:
            p = case.peak(layer)
            peak = None if p is None else (p.row, p.col)
        images = render_case_images(
            case.display_image(),
            {k: v.detach().cpu().numpy() for k, v in case.maps.items()},
            layer,
            case.drawn_regions,
            peak,
            full_image=settings.report_full_images,
        )
        if case.compared:  # the test compared its map with a baseline or reference map
            images = {**images, "compare": _compared_tiles(case)}
        record = replace(record, images=images)
    return record


#: Samples drawn for a regression gate: those the candidate broke (or that moved) first.
_GATE_PICTURES = 6


def _compared_tiles(case: CamCase) -> list[dict[str, Any]]:
    """Pictures of the maps a case was compared with: role | current | difference."""
    from .report.pictures import comparison_tiles

    rgb = case.display_image()
    current = case.map.detach().cpu().numpy()
    return [
        {
            "role": role,
            "tiles": comparison_tiles(
                rgb, current, other.detach().cpu().numpy(), case.regions, other_label=role
            ),
        }
        for role, other in case.compared.items()
    ]


def _gate_pictures(item: pytest.Item, gate: Any) -> list[dict[str, Any]]:
    """Pictures of the samples behind a regression gate: for ``assert_no_regression``, the
    reference's map beside the candidate's for the samples it broke (then fixed); for a map
    similarity rate, compared | current | difference for the samples that moved and failed."""
    from .regression import sample_maps
    from .report.pictures import comparison_tiles

    check = item.stash.get(CHECK_KEY, None)
    if check is None:
        return []
    if gate.check == "no_regression":
        comp = gate.comparison
        picks = [(sid, "broken by the candidate") for sid in comp.get("broken") or ()]
        picks = picks[:_GATE_PICTURES]
        picks += [(sid, "fixed by the candidate") for sid in comp.get("fixed") or ()][:3]
        against, folder, labels = "reference", None, ("reference", "candidate")
    else:
        sim = gate.similarity
        moved = [m for m in sim.get("moved") or () if not m.get("passed")][:_GATE_PICTURES]
        picks = [(str(m.get("id")), "moved") for m in moved]
        against = str(sim.get("against") or "baseline")
        folder = sim.get("source") if against == "baseline" else None
        labels = (against, "current")
    out = []
    for sid, kind in picks:
        try:
            got = sample_maps(check, sid, against, layer=gate.layer, folder=folder)
        except CamcheckError:  # e.g. the sample's batch failed: no picture, the gate stands
            got = None
        if got is None:
            continue
        tiles = comparison_tiles(
            got["image"],
            got["current"],
            got["other"],
            got["regions"],
            other_label=labels[0],
            current_label=labels[1],
            difference=gate.check != "no_regression",
        )
        out.append({"id": sid, "kind": kind, "tiles": tiles})
    return out


def _records(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]
) -> list[tuple[str, Any]]:
    from .report.records import GateRecord, outcome_of

    outcome = outcome_of(
        report.when, report.passed, report.failed, report.skipped, hasattr(report, "wasxfail")
    )
    if CASE_KEY in item.stash:
        return [("camcheck_case", _case_record(item, report, call, outcome))]
    scope = item.stash.get(SCOPE_KEY, None)
    if CHECK_KEY not in item.stash or scope is None:
        return []
    message = _message(report, call)
    render = _settings(item.config).report_all
    gates = []
    for ev in scope.items:
        if ev.check not in ("pass_rate", "no_regression"):
            continue
        gate = GateRecord.from_evidence(item.nodeid, ev, outcome, message)
        if (render or not ev.passed) and (gate.similarity or gate.check == "no_regression"):
            from dataclasses import replace

            gate = replace(gate, images={"samples": _gate_pictures(item, gate)})
        gates.append(("camcheck_gate", gate))
    return gates


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not _uses_camcheck(item):
        return report
    want_report = bool(_settings(item.config).report)
    want_html = bool(getattr(item.config.option, "htmlpath", None))  # pytest-html is active
    if not (want_report or want_html):
        return report
    if report.when == "call" or (report.when == "setup" and report.failed):
        try:
            for name, record in _records(item, report, call):
                if want_report:
                    report.user_properties.append((name, record.to_dict()))
                overlay = (
                    record.images.get("overlay") if want_html and name == "camcheck_case" else None
                )
                if overlay:
                    from .report.collector import attach_pytest_html

                    attach_pytest_html(report, overlay, name=f"CAM overlay {record.case_id}")
        except Exception as exc:  # a report problem must not hide the test's own outcome
            report.sections.append(("camcheck report", f"could not record this case: {exc!r}"))
    return report


__all__ = [
    "camcheck",
    "camcheck_case",
    "camcheck_dataset",
    "camcheck_device",
    "camcheck_model",
    "camcheck_reference_model",
    "camcheck_session",
    "camcheck_settings",
]
