"""Mapping the dataset's classes to the model's output indices.

A folder dataset numbers its classes 0..K-1 in sorted order (as torchvision's ``ImageFolder``
does); a model pretrained on ImageNet numbers its outputs 0..999. ``camcheck_classes`` says which
output each dataset class is:

- a JSON object, ``{"cat": 285, "cup": 968}``: dataset class name -> output index;
- a file of the model's category names, one per line (line ``i`` names output ``i``) or a JSON
  list (position ``i``) or object (name -> index); dataset classes are matched by name;
- ``auto``: the model's own category names (torchvision weights' ``meta["categories"]``, timm's
  ImageNet label descriptions, Hugging Face ``config.id2label``, or a ``categories`` attribute),
  matched by name.

Names match when they are equal after lower-casing and treating ``_``, ``-`` and runs of spaces
as one space; a category written as synonyms (``"tabby, tabby cat"``, as timm and Hugging Face
name ImageNet's classes) matches any of them. A class that matches no category, or several, is
an error that lists them.

The dataset keeps its own labels (the report shows them); :class:`ClassMap` turns a label into
the output index the maps explain.

Imports nothing heavy: the model is only inspected for attributes.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "ClassMap",
    "agreement_warning",
    "build_class_map",
    "model_categories",
    "name_key",
    "parse_classes",
    "read_category_file",
    "resolve_target",
]

#: The ``camcheck_classes`` value that reads the names from the model.
AUTO = "auto"


def name_key(name: str) -> str:
    """The form names are compared in: lower case, ``_`` / ``-`` / runs of spaces as one space."""
    return re.sub(r"[\s_\-]+", " ", str(name)).strip().lower()


def _synonyms(category: str) -> list[str]:
    """``"tabby, tabby cat"`` -> ``["tabby, tabby cat", "tabby", "tabby cat"]`` (as keys)."""
    whole = name_key(category)
    parts = [name_key(p) for p in str(category).split(",")]
    return list(dict.fromkeys([whole, *(p for p in parts if p)]))


def _check_mapping(value: Mapping[Any, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, index in value.items():
        if not str(name).strip():
            raise ValueError("a class name in the mapping is empty")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(
                f"class {name!r} maps to {index!r}; each class needs a model output index >= 0 "
                '(e.g. {"cat": 285})'
            )
        out[str(name)] = int(index)
    if not out:
        raise ValueError('the mapping is empty; give at least one class, e.g. {"cat": 285}')
    return out


def parse_classes(value: Any) -> str | dict[str, int] | None:
    """The ``camcheck_classes`` setting: None, ``"auto"``, a mapping, or a file path (str).

    Raises:
        ValueError: a JSON object that does not parse, or maps a class to something other
            than an index >= 0.
    """
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _check_mapping(value)
    text = str(value).strip()
    if not text:
        return None
    if text.lower() == AUTO:
        return AUTO
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'expected a JSON object such as {{"cat": 285}}, got {text!r} ({exc})'
            ) from None
        if not isinstance(loaded, dict):
            raise ValueError('expected a JSON object such as {"cat": 285}')
        return _check_mapping(loaded)
    return text


def read_category_file(path: str | os.PathLike[str]) -> list[str] | dict[str, int]:
    """The model's category names from a file: one per line (line ``i`` names output ``i``),
    a JSON list, or a JSON object name -> index.

    Raises:
        ConfigError: the file is missing or empty, or its JSON is neither a list nor an object
            of indices.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"camcheck_classes: {str(p)!r} is neither a JSON object, 'auto', nor an existing "
            "file of category names"
        )
    text = p.read_text(encoding="utf-8-sig")
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            loaded = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"camcheck_classes: {str(p)!r} is not valid JSON ({exc})") from None
        if isinstance(loaded, list) and all(isinstance(x, str) for x in loaded) and loaded:
            return list(loaded)
        if isinstance(loaded, dict):
            try:
                return _check_mapping(loaded)
            except ValueError as exc:
                raise ConfigError(f"camcheck_classes: {str(p)!r}: {exc}") from None
        raise ConfigError(
            f"camcheck_classes: {str(p)!r} holds JSON that is neither a list of category names "
            "nor an object of name -> index"
        )
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:  # a line per output: only trailing blank lines go
        names.pop()
    if not any(names):
        raise ConfigError(f"camcheck_classes: {str(p)!r} names no category")
    return names


def model_categories(model: Any) -> list[str] | None:
    """The model's category names by output index, when the model knows them.

    Looked up, in order: a ``categories`` attribute (set by camcheck for torchvision weights
    and by :func:`pytest_camcheck.zoo.efficientnet_lite0`), Hugging Face ``config.id2label``,
    timm's ``pretrained_cfg["label_names"]`` or its ImageNet label descriptions.
    """
    own = getattr(model, "categories", None)
    if isinstance(own, (list, tuple)) and own and all(isinstance(c, str) for c in own):
        return list(own)
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None)
    if isinstance(id2label, Mapping) and id2label:
        try:
            pairs = sorted((int(k), str(v)) for k, v in id2label.items())
        except (TypeError, ValueError):
            pairs = []
        if pairs and [k for k, _ in pairs] == list(range(len(pairs))):
            names = [v for _, v in pairs]
            # a config saved without labels has the placeholders LABEL_0, LABEL_1, ...
            if not all(re.fullmatch(r"LABEL_\d+", n) for n in names):
                return names
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, Mapping):
        names = cfg.get("label_names")
        if isinstance(names, (list, tuple)) and names:
            return [str(n) for n in names]
        return _timm_imagenet_names(model)
    return None


def _timm_imagenet_names(model: Any) -> list[str] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset
    except ImportError:  # pragma: no cover - a model with pretrained_cfg comes from timm
        return None
    subset = infer_imagenet_subset(model)
    if not subset:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(info.num_classes())]


@dataclass(frozen=True)
class ClassMap:
    """Dataset class index -> model output index, and names for both.

    Attributes:
        to_model: dataset class index -> model output index.
        dataset_names: the dataset's class names by index.
        model_names: model output index -> category name, when known.
        source: where the mapping came from, for messages (``"camcheck_classes (JSON)"``).
    """

    to_model: dict[int, int]
    dataset_names: tuple[str, ...] = ()
    model_names: dict[int, str] = field(default_factory=dict)
    source: str = "camcheck_classes"

    def model_index(self, label: int) -> int:
        """The model output index of dataset class ``label``.

        Raises:
            ConfigError: the class has no output (it is missing from the mapping).
        """
        try:
            return self.to_model[int(label)]
        except KeyError:
            name = self.dataset_names[label] if 0 <= label < len(self.dataset_names) else label
            raise ConfigError(
                f"{self.source}: dataset class {name!r} (label {label}) maps to no model output; "
                "add it to camcheck_classes"
            ) from None

    def output_name(self, index: int) -> str | None:
        """The name to show for model output ``index``: the dataset class mapped to it, else
        the model's category name."""
        for label, out in self.to_model.items():
            if out == index and 0 <= label < len(self.dataset_names):
                return self.dataset_names[label]
        return self.model_names.get(int(index))

    def describe(self) -> str:
        """``cat -> 285, cup -> 968`` (at most eight shown)."""
        pairs = [
            f"{self.dataset_names[k] if k < len(self.dataset_names) else k} -> {v}"
            for k, v in sorted(self.to_model.items())
        ]
        more = f", ... ({len(pairs)} classes)" if len(pairs) > 8 else ""
        return ", ".join(pairs[:8]) + more


def _match(dataset_names: Sequence[str], categories: Sequence[str], source: str) -> dict[int, int]:
    """Match dataset class names against category names; errors list every failure."""
    index: dict[str, list[int]] = {}
    for i, cat in enumerate(categories):
        if not cat:
            continue
        for key in _synonyms(cat):
            index.setdefault(key, [])
            if i not in index[key]:
                index[key].append(i)
    out: dict[int, int] = {}
    missing: list[str] = []
    ambiguous: list[str] = []
    for label, name in enumerate(dataset_names):
        found = index.get(name_key(name), [])
        if len(found) == 1:
            out[label] = found[0]
        elif not found:
            close = difflib.get_close_matches(name_key(name), list(index), n=3, cutoff=0.6)
            missing.append(f"{name!r}" + (f" (close: {', '.join(close)})" if close else ""))
        else:
            shown = ", ".join(f"{i} {categories[i]!r}" for i in found[:4])
            ambiguous.append(f"{name!r} ({shown})")
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(dataset_names)} dataset classes match no category name of "
            f"{source}: {'; '.join(missing[:20])}"
        )
    if ambiguous:
        problems.append(f"ambiguous names, matching several outputs: {'; '.join(ambiguous)}")
    if problems:
        raise ConfigError(
            f"camcheck_classes: {'. '.join(problems)}. Rename the class folders to the model's "
            'category names or give the mapping as JSON, e.g. camcheck_classes = {"cat": 285}'
        )
    return out


def _from_mapping(
    mapping: Mapping[str, int], dataset_names: Sequence[str], source: str
) -> dict[int, int]:
    by_key = {name_key(k): v for k, v in mapping.items()}
    out: dict[int, int] = {}
    missing = []
    for label, name in enumerate(dataset_names):
        index = mapping.get(name, by_key.get(name_key(name)))
        if index is None:
            missing.append(repr(name))
        else:
            out[label] = int(index)
    known = {name_key(n) for n in dataset_names}
    unknown = [repr(k) for k in mapping if name_key(k) not in known]
    if missing:
        hint = ""
        if unknown:
            hint = f"; the mapping names {', '.join(unknown[:10])}, which no class is"
        raise ConfigError(
            f"camcheck_classes: {len(missing)} of {len(dataset_names)} dataset classes are not "
            f"in {source}: {', '.join(missing[:20])}{hint}"
        )
    return out


def build_class_map(
    spec: str | Mapping[str, int] | None,
    dataset_names: Sequence[str] | None,
    model: Any = None,
    rootdir: str | os.PathLike[str] | None = None,
    width: int | None = None,
) -> ClassMap | None:
    """The :class:`ClassMap` that ``camcheck_classes`` describes (None when it is unset).

    Args:
        spec: the parsed setting (see :func:`parse_classes`).
        dataset_names: the dataset's class names by label index.
        model: the model, for ``auto`` and for the names shown in the report.
        rootdir: relative file paths are resolved against it.
        width: the number of model outputs, when known: indices beyond it are refused.

    Raises:
        ConfigError: the dataset has no class names, a class matches nothing (the message
            lists them), the model has no category names for ``auto``, or an index is out of
            range.
    """
    if spec is None:
        return None
    parsed = parse_classes(spec) if not isinstance(spec, Mapping) else _check_mapping(spec)
    assert parsed is not None
    categories = model_categories(model) if model is not None else None
    names = list(dataset_names or [])
    if not names:
        raise ConfigError(
            "camcheck_classes is set but the dataset has no class names (class folders, or "
            "class names in the annotations, or a `class_names` attribute of a factory's "
            "dataset); without them there is nothing to map. Use integer labels that are "
            "model output indices instead, and leave camcheck_classes unset"
        )
    if isinstance(parsed, dict):
        to_model = _from_mapping(parsed, names, "the JSON mapping")
        source = "camcheck_classes (JSON)"
    elif parsed == AUTO:
        if not categories:
            raise ConfigError(
                f"camcheck_classes = auto: the model ({type(model).__name__}) has no category "
                "names (torchvision weights' meta, timm label names, Hugging Face "
                "config.id2label, or a `categories` attribute); give the mapping as JSON, e.g. "
                'camcheck_classes = {"cat": 285}, or a file of category names'
            )
        to_model = _match(names, categories, "the model")
        source = "camcheck_classes = auto"
    else:
        path = Path(parsed)
        if rootdir is not None and not path.is_absolute():
            path = Path(rootdir) / path
        content = read_category_file(path)
        if isinstance(content, dict):
            to_model = _from_mapping(content, names, str(parsed))
        else:
            to_model = _match(names, content, f"{parsed}")
            categories = categories or content
        source = f"camcheck_classes ({parsed})"
    if width is not None:
        bad = {names[k]: v for k, v in to_model.items() if v >= width}
        if bad:
            shown = ", ".join(f"{k!r} -> {v}" for k, v in list(bad.items())[:10])
            raise ConfigError(
                f"{source}: output index out of range for a model with {width} outputs: {shown}"
            )
    model_names = dict(enumerate(categories)) if categories else {}
    return ClassMap(to_model, tuple(names), model_names, source)


def resolve_target(
    target: str | int,
    class_map: ClassMap | None,
    model: Any = None,
    width: int | None = None,
) -> int:
    """The model output index a ``camcheck_target`` names (an index, or a class name).

    A name is looked up among the dataset's classes mapped by ``camcheck_classes`` first, then
    among the model's category names.

    Raises:
        ConfigError: an index out of range, or a name that matches no class (the message lists
            close names).
    """
    if isinstance(target, int):
        if width is not None and not 0 <= target < width:
            raise ConfigError(
                f"camcheck_target: class index {target} is out of range for a model with "
                f"{width} outputs (0..{width - 1})"
            )
        return target
    key = name_key(target)
    candidates: list[str] = []
    if class_map is not None:
        for label, name in enumerate(class_map.dataset_names):
            if name_key(name) == key and label in class_map.to_model:
                return class_map.to_model[label]
        candidates += list(class_map.dataset_names)
    categories = model_categories(model) if model is not None else None
    if categories:
        found = [i for i, c in enumerate(categories) if key in _synonyms(c)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigError(
                f"camcheck_target: {target!r} names several model outputs ({found[:5]}); give "
                "the index instead"
            )
        candidates += list(categories)
    close = difflib.get_close_matches(target, ["label", "predicted", *candidates], n=4)
    where = (
        "the dataset's mapped classes or the model's category names"
        if candidates
        else "any class: the model has no category names and camcheck_classes is unset"
    )
    raise ConfigError(
        f"camcheck_target: {target!r} is not label, predicted, an index or a name of {where}"
        + (f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "")
    )


def agreement_warning(pairs: Sequence[tuple[int, int]], mapped: bool = False) -> str | None:
    """The warning to show when labels and predictions agree less often than chance.

    Args:
        pairs: ``(label as an output index, top prediction)`` per labelled sample.
        mapped: whether ``camcheck_classes`` mapped the labels (for the advice).

    Returns:
        ``"labels and predictions agree on 0 of 12 samples: is camcheck_classes right? ..."``
        when they agree on fewer samples than a guess among the labels' classes would
        (samples / classes), else None (also for fewer than two classes).
    """
    total = len(pairs)
    classes = len({label for label, _ in pairs})
    if total == 0 or classes < 2:
        return None
    agree = sum(label == pred for label, pred in pairs)
    chance = total / classes
    if agree >= chance:
        return None
    advice = (
        "the mapping may send the classes to the wrong outputs"
        if mapped
        else "the labels are used as output indices of the model as they are; if the model's "
        'outputs are not the dataset\'s classes, map them with camcheck_classes (e.g. {"cat": '
        "285}, or auto)"
    )
    return (
        f"labels and predictions agree on {agree} of {total} samples: is camcheck_classes "
        f"right? (chance is {chance:.1f} for {classes} classes; {advice})"
    )
