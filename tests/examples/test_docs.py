"""Every code block of the README, docs/ and the examples' READMEs is executed or collected.

- ``python``: a block that defines tests or fixtures is written into a small pytest project
  (with a camcheck dataset, and a stand-in ``mypkg`` for the user's package the docs name) and
  collected there; every other block runs, a file's blocks in order in one namespace that starts
  with ``model`` (a torchvision ResNet-18) and ``images`` (two random images).
- ``toml``: parsed; every ``camcheck_*`` key must exist and its value must parse.
- ``sh``: ``make`` targets must exist in the Makefile, ``--camcheck-*`` options must exist (and
  their values parse), ``pip install`` extras must exist, ``python -m`` modules must import and
  ``python examples/...`` scripts must exist; Python in a here-document must compile.
- ``json``: parsed.
- ``text`` and unlabelled blocks are layouts and terminal output, not code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
CODE_LANGS = {"python", "toml", "sh", "bash", "console", "json"}
PROSE_LANGS = {"text", ""}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def defines_tests(self) -> bool:
        return bool(re.search(r"^(async )?def test_|^@pytest\.fixture", self.text, re.M))


def doc_files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "examples").rglob("README.md")),
    ]


def blocks_of(path: Path) -> list[Block]:
    out: list[Block] = []
    lang: str | None = None
    start = 0
    lines: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if fence and lang is None:
            lang, start, lines = fence.group(1).lower(), number, []
        elif fence and lang is not None:
            out.append(Block(path, start, lang, textwrap.dedent("\n".join(lines)) + "\n"))
            lang = None
        elif lang is not None:
            lines.append(line)
    assert lang is None, f"{path}:{start}: unclosed code block"
    return out


ALL = [b for p in doc_files() for b in blocks_of(p)]


def of(*langs: str) -> list[pytest.param]:
    return [pytest.param(b, id=b.id) for b in ALL if b.lang in langs]


def test_every_block_is_of_a_kind_this_module_checks() -> None:
    unknown = [f"{b.id} ({b.lang})" for b in ALL if b.lang not in CODE_LANGS | PROSE_LANGS]
    assert not unknown, f"code blocks of an unchecked language: {unknown}"
    assert len([b for b in ALL if b.lang in CODE_LANGS]) >= 30


# ------------------------------------------------------------------------------------------
# python


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in doc_files()
        if any(b.lang == "python" and not b.defines_tests for b in blocks_of(p))
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import torchvision

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = {
        "__name__": "__doc__",
        "model": torchvision.models.resnet18(weights=None).eval(),
        "images": torch.randn(2, 3, 64, 64),
    }
    for block in blocks_of(path):
        if block.lang != "python" or block.defines_tests:
            continue
        code = compile(block.text, block.id, "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)


MYPKG = """
from torch import nn


def build_my_net():
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


build_classifier = build_my_net
"""


def test_test_blocks_are_collected(pytester: pytest.Pytester) -> None:
    from PIL import Image

    test_blocks = [b for b in ALL if b.lang == "python" and b.defines_tests]
    assert test_blocks
    for cls in ("cat", "dog"):
        (pytester.path / "data" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(pytester.path / "data" / cls / "1.png")
    (pytester.path / "mypkg").mkdir()
    (pytester.path / "mypkg" / "__init__.py").write_text("")
    (pytester.path / "mypkg" / "models.py").write_text(MYPKG)
    pytester.makeini("[pytest]\ncamcheck_dataset = data\n")
    functions = 0
    for i, block in enumerate(test_blocks):
        (pytester.path / f"test_doc_{i:02d}.py").write_text(f"# {block.id}\n{block.text}")
        functions += len(re.findall(r"^def test_", block.text, re.M))
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    # a per-sample test is one item per image (2 here), a dataset-level test one item
    collected = [line for line in result.stdout.lines if "::test_" in line]
    assert len(collected) >= functions


# ------------------------------------------------------------------------------------------
# configuration


def _check_camcheck_keys(values: dict[str, object], where: str) -> None:
    from pytest_camcheck.settings import OPTIONS, settings_from

    known = {o.ini for o in OPTIONS}
    keys = {k: v for k, v in values.items() if k.startswith("camcheck_")}
    unknown = sorted(set(keys) - known)
    assert not unknown, f"{where}: unknown keys {unknown}"
    settings_from(lambda k: None, lambda k: keys.get(k))  # raises ConfigError on a bad value


@pytest.mark.parametrize("block", of("toml"))
def test_toml_blocks_parse_and_name_real_keys(block: Block) -> None:
    data = tomllib.loads(block.text)
    ini = data.get("tool", {}).get("pytest", {}).get("ini_options")
    assert isinstance(ini, dict), f"{block.id}: no [tool.pytest.ini_options] table"
    _check_camcheck_keys(ini, block.id)


@pytest.mark.parametrize("block", of("json"))
def test_json_blocks_parse(block: Block) -> None:
    json.loads(block.text)


# ------------------------------------------------------------------------------------------
# shell


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))


def _extras() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["project"]["optional-dependencies"])


def _check_pytest_args(args: list[str], where: str) -> None:
    from pytest_camcheck.settings import OPTIONS

    by_flag = {o.cli: o for o in OPTIONS}
    for arg in args:
        if not arg.startswith("--camcheck-"):
            continue
        flag, _, value = arg.partition("=")
        if flag == "--camcheck-layers":
            continue
        assert flag in by_flag, f"{where}: unknown option {flag}"
        if value:
            by_flag[flag].parse(flag, value)


def _commands(text: str) -> list[tuple[list[str], str]]:
    """Each command line (with ``\\`` continuations joined) and the here-document it feeds."""
    out: list[tuple[list[str], str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i]
        i += 1
        heredoc = ""
        marker = re.search(r"<<\s*'?(\w+)'?", line)
        if marker:
            body = []
            while i < len(lines) and lines[i].strip() != marker.group(1):
                body.append(lines[i])
                i += 1
            i += 1
            heredoc = "\n".join(body)
            line = line[: marker.start()]
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        if words:
            out.append((words, heredoc))
    return out


@pytest.mark.parametrize("block", of("sh", "bash", "console"))
def test_shell_blocks_name_real_targets_options_and_modules(block: Block) -> None:
    targets, extras = _make_targets(), _extras()
    for words, heredoc in _commands(block.text):
        for part in " ".join(words).split("||"):
            cmd = part.split()
            if not cmd:
                continue
            where = f"{block.id}: {' '.join(cmd)}"
            if cmd[0] == "make":
                for target in (w for w in cmd[1:] if "=" not in w and not w.startswith("-")):
                    assert target in targets, f"{where}: no make target {target!r}"
            elif cmd[0] == "pytest":
                _check_pytest_args(cmd[1:], where)
            elif cmd[:2] == ["pip", "install"]:
                for found in re.findall(r"\[([\w,-]+)\]", " ".join(cmd[2:])):
                    missing = set(found.split(",")) - extras
                    assert not missing, f"{where}: no extra {sorted(missing)} in pyproject.toml"
            elif cmd[0] == "python" and len(cmd) > 2 and cmd[1] == "-m":
                assert importlib.util.find_spec(cmd[2]) is not None, f"{where}: no module"
            elif cmd[0] == "python" and len(cmd) > 1 and cmd[1].startswith("examples/"):
                assert (ROOT / cmd[1]).is_file(), f"{where}: no such script"
        if heredoc and words[0] == "python":
            compile(heredoc, f"{block.id} (here-document)", "exec")


# ------------------------------------------------------------------------------------------
# the reference and the README's first screen


def test_the_config_reference_names_every_key_and_option() -> None:
    from pytest_camcheck.settings import MARKER_KEYS, OPTIONS

    text = (ROOT / "docs" / "config.md").read_text()
    missing = [o.ini for o in OPTIONS if f"`{o.ini}`" not in text]
    assert not missing, f"docs/config.md lacks {missing}"
    assert "--camcheck-layers" in text
    assert all(f"`{k}`" in text for k in MARKER_KEYS)


def test_the_readme_opens_with_what_it_does_a_screenshot_and_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first = text.split("\n## ", 1)[0]
    assert "Test **where** your image classifier looks" in first
    image = re.search(r"!\[[^\]]+\]\(([^)]+\.png)\)", first)
    assert image is not None, "no screenshot before the first section"
    png = ROOT / image.group(1)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    commands = [w for b in blocks_of(ROOT / "README.md")[:1] for w, _ in _commands(b.text)]
    assert [c[:2] for c in commands] == [["make", "demo"], ["make", "test"]]
    assert first.index("![") < first.index("make demo")


def test_the_checks_catch_mistakes() -> None:
    from pytest_camcheck.errors import ConfigError

    with pytest.raises(AssertionError, match="unknown keys"):
        _check_camcheck_keys({"camcheck_modle": "x"}, "here")
    with pytest.raises(ConfigError, match="camcheck_batch_size"):
        _check_camcheck_keys({"camcheck_batch_size": "zero"}, "here")
    block = Block(ROOT / "README.md", 1, "sh", "make dmeo\n")
    with pytest.raises(AssertionError, match="no make target 'dmeo'"):
        test_shell_blocks_name_real_targets_options_and_modules(block)
    for text, message in [
        ("pytest --camcheck-methd=cam\n", "unknown option --camcheck-methd"),
        ("pip install -e '.[tim]'\n", "no extra"),
        ("python -m pytest_camcheck.nope\n", "no module"),
    ]:
        with pytest.raises(AssertionError, match=message):
            test_shell_blocks_name_real_targets_options_and_modules(Block(ROOT, 1, "sh", text))
    with pytest.raises(SyntaxError):
        test_shell_blocks_name_real_targets_options_and_modules(
            Block(ROOT, 1, "sh", "python - <<'EOF'\nprint(\nEOF\n")
        )
