"""Training recipes: YAML files parsed into frozen dataclasses.

A recipe names the model, the data sources and a list of stages; each stage has its own data mix, loss
weights, resolution, learning-rate schedule and iteration count. Any unknown, missing or ill-typed key
raises ``RecipeError`` naming the key's path (e.g. ``stages[1].losses.lpips``). A recipe may start from
another (``base: other.yaml``) and give only what differs; see :func:`merge`. Relative paths in a
recipe resolve against the working directory (run from the repository root).
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from edgedepth.errors import choices
from edgedepth.fileio import atomic_write_bytes
from edgedepth.textinput import finite_number

from .data.appearance import AppearanceConfig
from .data.augment import AugmentConfig
from .errors import RecipeError
from .losses.distill import DEFAULT_NORMALIZATION

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
MAX_INT = 2**31 - 1  # every whole number in a recipe is a count, a size or a seed
LABELLED_LOSSES = ("ssi_l1", "gradient", "laplace_nll", "perceptual", "edge_huber")
# Against a teacher's pseudo-labels: the global view, the shared-context crop, and the local-global crop.
DISTILL_LOSSES = ("distill", "distill_shared", "distill_local_global")
LOSS_NAMES = LABELLED_LOSSES + DISTILL_LOSSES


@dataclass(frozen=True)
class SourceConfig:
    """A data source. ``kind``: synthetic (procedural renderer), cached (a render cache of furniture scenes,
    ``edgedepth-train render``), rgbd (folder with depth), unlabelled, or pseudo (unlabelled images with a
    teacher's pseudo-labels, computed once into a cache; see ``train/distill.py``)."""

    kind: Literal["synthetic", "cached", "rgbd", "unlabelled", "pseudo"]
    root: str | None = None  # rgbd folder, or render-cache folder (``~`` expands)
    images: str | None = None  # unlabelled image folder
    videos: str | None = None  # unlabelled video folder
    frame_step: int = 10
    texture_dir: str | None = "../shared/data/images"  # synthetic; null = procedural textures
    length: int = 1_000_000  # synthetic: distinct seeded scenes to draw from; cached: use the first N frames
    # pseudo: the teacher (.onnx, .engine or our .safetensors checkpoint; ``spec`` = ModelSpec JSON for a
    # third-party ONNX), an optional assistant teacher for a random fraction of samples, the crop plan
    # (crops per image, crop side as a fraction of the image's, label size) and the cache folder
    # (default: derived from the teacher's sha256 and the plan, under ~/.cache/edgedepth/pseudo).
    teacher: str | None = None
    teacher_sha256: str | None = None  # pins the teacher: a recipe that ships names its teacher by content
    teacher_spec: str | None = None
    assistant: str | None = None
    assistant_spec: str | None = None
    assistant_fraction: float = 0.0
    crops: int = 2
    crop_scale: tuple[float, float] = (0.35, 0.65)
    label_size: tuple[int, int] = (192, 256)
    # pseudo: the teacher's input long sides, its views averaged (empty: the teacher's own size), and
    # whether the mirrored views join them (edgedepth-train eval --long-side 224 256 320 --flip scores that)
    teacher_sides: tuple[int, ...] = ()
    teacher_flip: bool = False
    # synthetic: a render cache of these scenes (``edgedepth-train render --scenes procedural``) to read
    # instead of rendering each frame while training; pseudo: the pseudo-label cache folder (see above)
    cache: str | None = None


@dataclass(frozen=True)
class StageConfig:
    name: str
    iterations: int
    resolution: tuple[int, int]
    data: dict[str, float]
    losses: dict[str, float]
    lr: float = 1e-3
    encoder_lr_scale: float = 0.5
    warmup: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    weighting: Literal["uncertainty", "none"] = "uncertainty"
    perceptual_downsample: int = 2
    perceptual_every: int = 1  # compute the perceptual term on every k-th step only (speed)
    # the distillation normalisation (train/losses/distill.py)
    distill_norm: Literal["hybrid", "global", "local", "none"] = DEFAULT_NORMALIZATION
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)  # rendered sources only


@dataclass(frozen=True)
class SpeedConfig:
    """How a step is computed, not what it computes (``edgedepth-train throughput`` measures each lever).

    ``channels_last``: NHWC activations and weights (oneDNN's fast layout on CPU). ``precision``: ``bf16``
    runs the model's forward under bfloat16 autocast (master weights, optimiser and losses stay fp32);
    ``auto`` does so only where oneDNN reports native bf16 support. ``compile``: ``torch.compile`` the
    model. ``worker_nice``: niceness added to data-loader workers, so that on a small CPU the training
    threads keep the cores and the workers fill the queue in their gaps.
    """

    channels_last: bool = False
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    compile: bool = False
    worker_nice: int = 0


@dataclass(frozen=True)
class Recipe:
    name: str
    model: str
    stages: tuple[StageConfig, ...]
    sources: dict[str, SourceConfig]
    pretrained: bool = True
    freeze_encoder_bn: bool | None = None  # None: the model's own default (efficientdepth-l freezes)
    init: str | None = None  # a checkpoint whose model weights start the run (e.g. a trained student)
    seed: int = 0
    batch_size: int = 8
    workers: int = 2
    threads: int = 2
    checkpoint_every: int = 250
    snapshot_every: int = 0  # keep the model weights every N global steps (0: never), for a training curve
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    export_size: tuple[int, int] | None = None  # None: the model config's input size
    sha256: str = field(default="", compare=False)

    def stage_start(self, stage_index: int) -> int:
        """Global step at which a stage begins."""
        return sum(s.iterations for s in self.stages[:stage_index])

    @property
    def total_iterations(self) -> int:
        return self.stage_start(len(self.stages))

    def plain(self) -> Recipe:
        """This recipe as it trained before the speed levers, the baseline that ``throughput`` measures
        against: fp32, contiguous, two loader workers at normal priority and two threads, procedural scenes
        rendered while training, and the perceptual term on every step."""
        sources = {
            n: dataclasses.replace(s, cache=None) if s.kind == "synthetic" else s
            for n, s in self.sources.items()
        }
        stages = tuple(dataclasses.replace(st, perceptual_every=1) for st in self.stages)
        return dataclasses.replace(
            self, speed=SpeedConfig(), workers=2, threads=2, sources=sources, stages=stages
        )


def recipe_path(path: str | Path) -> Path:
    """A recipe file; a bare name (``efficientdepth-s``) means a shipped recipe."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = RECIPES_DIR / f"{path}.yaml"
    if not path.exists():  # what is there but not a regular file is refused when read
        shipped = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"recipe {path} does not exist; shipped recipes: {choices(shipped)}")
    return path


def read_yaml(path: Path) -> Any:
    """A recipe file's YAML, read through ``edgedepth.textinput`` (a regular file, a size cap, bounded
    nesting); any failure is a RecipeError naming the file."""
    from edgedepth.errors import InputError
    from edgedepth.textinput import load_yaml_input

    try:
        return load_yaml_input(path, "recipe")
    except InputError as exc:
        raise RecipeError(str(exc)) from None


def merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: mappings merge key by key, a list of mappings merges item by item
    with a base list of the same length (stages), anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merge(base[k], v) if k in base else v for k, v in over.items()}}
    same_length_lists = isinstance(base, list) and isinstance(over, list) and len(base) == len(over)
    if same_length_lists and all(isinstance(x, dict) for x in [*base, *over]):
        return [merge(b, o) for b, o in zip(base, over, strict=True)]
    return over


def read_recipe(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """A recipe's raw mapping with its ``base:`` (a recipe file relative to this one, or a shipped name)
    resolved, and its sha256: the file's bytes, chained with its base's sha256 when it has one."""
    path = recipe_path(path)
    raw = read_yaml(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not isinstance(raw, dict) or "base" not in raw:
        return raw, digest
    ref = str(raw.pop("base"))
    base = path.parent / ref if (path.parent / ref).is_file() else Path(ref)
    if recipe_path(base).resolve() in [p.resolve() for p in (*_chain, path)]:
        raise RecipeError(f"{path}: base {ref} leads back to itself")
    base_raw, base_digest = read_recipe(base, (*_chain, path))
    return merge(base_raw, raw), hashlib.sha256(f"{digest}:{base_digest}".encode()).hexdigest()


def override(raw: dict[str, Any], assignment: str) -> None:
    """Apply ``key.sub=value`` (the value parsed as YAML) to a raw recipe; ``stages.*.key`` sets every stage."""
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected KEY=VALUE, e.g. speed.precision=bf16")
    path, value = assignment.split("=", 1)
    keys = path.split(".")
    nodes = [raw]
    for key in keys[:-1]:
        nxt = []
        for node in nodes:
            if key == "*" and isinstance(node, list):
                nxt += node
            elif isinstance(node, dict):
                nxt.append(node.setdefault(key, {}))
            else:
                raise RecipeError(f"--set {assignment!r}: {key!r} is not a mapping in the recipe")
        nodes = nxt
    for node in nodes:
        node[keys[-1]] = yaml.safe_load(value)


def load_with_overrides(path: str | Path, assignments: list[str]) -> dict[str, Any]:
    """The raw recipe at ``path`` (its base resolved) with each ``KEY=VALUE`` applied."""
    raw = read_recipe(path)[0]
    for assignment in assignments:
        override(raw, assignment)
    return raw


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe; a bare name (``efficientdepth-s``) means a shipped recipe."""
    raw, digest = read_recipe(path)
    recipe = parse_recipe(raw, source=str(recipe_path(path)))
    return dataclasses.replace(recipe, sha256=digest)


def recipe_from_dict(raw: dict[str, Any], source: str) -> Recipe:
    """Validate a recipe built in code (e.g. a shipped one with command-line overrides); its sha256 is that
    of its YAML text, which is what a run folder keeps as ``recipe.yaml``."""
    recipe = parse_recipe(raw, source=source)
    text = yaml.safe_dump(raw, sort_keys=False)
    return dataclasses.replace(recipe, sha256=hashlib.sha256(text.encode()).hexdigest())


def write_run_recipe(raw: dict[str, Any], out: str | Path, source: str) -> Recipe:
    """Validate a recipe built on the command line and keep it as ``OUT/recipe.yaml``, byte for byte what
    its sha256 covers, so that ``--recipe OUT/recipe.yaml`` resumes the run."""
    recipe = recipe_from_dict(raw, source=source)
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(out) / "recipe.yaml", yaml.safe_dump(raw, sort_keys=False).encode())
    return recipe


def parse_recipe(raw: Any, source: str = "recipe") -> Recipe:
    recipe = _build(Recipe, raw, source)
    _check(recipe, source)
    return recipe


def _check(recipe: Recipe, source: str) -> None:
    from .models.registry import list_models

    if recipe.model not in list_models():
        raise RecipeError(
            f"{source}: model={recipe.model!r} is unknown; choose one of {choices(list_models())}"
        )
    if not recipe.stages:
        raise RecipeError(f"{source}: stages is empty")
    for name in ("batch_size", "threads", "checkpoint_every"):
        if getattr(recipe, name) < 1:
            raise RecipeError(f"{source}: {name}={getattr(recipe, name)} must be at least 1")
    for i, stage in enumerate(recipe.stages):
        where = f"{source}: stages[{i}]"
        for name in stage.losses:
            if name not in LOSS_NAMES:
                raise RecipeError(f"{where}.losses.{name} is not a loss; choose from {choices(LOSS_NAMES)}")
        for name in stage.data:
            if name not in recipe.sources:
                raise RecipeError(f"{where}.data.{name} names no source; sources: {choices(recipe.sources)}")
        if stage.iterations < 1:
            raise RecipeError(f"{where}.iterations must be >= 1")
        if stage.perceptual_every < 1:
            raise RecipeError(f"{where}.perceptual_every must be >= 1")
        if any(s % 32 for s in stage.resolution):
            raise RecipeError(f"{where}.resolution={list(stage.resolution)} must be multiples of 32")
        if not stage.data or min(stage.data.values()) < 0 or sum(stage.data.values()) <= 0:
            raise RecipeError(f"{where}.data needs positive mixing weights")
        pseudo = any(recipe.sources[n].kind == "pseudo" for n in stage.data)
        distills = [n for n in stage.losses if n in DISTILL_LOSSES]
        if distills and not pseudo:
            raise RecipeError(f"{where}.losses.{distills[0]} needs a pseudo source in {where}.data")
        if pseudo and not distills:
            raise RecipeError(f"{where}.data has a pseudo source but no loss in {choices(DISTILL_LOSSES)}")
    if not 0 <= recipe.speed.worker_nice <= 19:
        raise RecipeError(f"{source}: speed.worker_nice must be in 0..19, got {recipe.speed.worker_nice}")
    for name, src in recipe.sources.items():
        if src.kind == "pseudo" and (src.teacher is None or (src.images is None and src.videos is None)):
            raise RecipeError(f"{source}: sources.{name} (pseudo) needs a teacher and images or videos")
        if any(side < 32 for side in src.teacher_sides):
            raise RecipeError(
                f"{source}: sources.{name}.teacher_sides={list(src.teacher_sides)}: each side must be at least "
                "32 pixels"
            )
        if src.assistant_fraction and src.assistant is None:
            raise RecipeError(f"{source}: sources.{name}.assistant_fraction needs an assistant")


def _build(tp: Any, value: Any, path: str) -> Any:
    """Convert plain YAML data to ``tp`` (dataclasses, tuples, dicts, literals, scalars), naming ``path``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{path} must be a mapping, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name: f for f in dataclasses.fields(tp) if f.init and f.name != "sha256"}
        for key in value:
            if key not in known:
                raise RecipeError(f"{path}.{key} is not a known key; valid keys: {choices(known)}")
        kwargs = {}
        for name, f in known.items():
            if name in value:
                kwargs[name] = _build(hints[name], value[name], f"{path}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecipeError(f"{path}.{name} is required")
        try:
            return tp(**kwargs)
        except ValueError as exc:
            raise RecipeError(f"{path}: {exc}") from None
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise RecipeError(f"{path}={value!r} is not valid; choose one of {choices(typing.get_args(tp))}")
        return value
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _build(arg, value, path)
            except RecipeError as exc:
                errors.append(str(exc))
        raise RecipeError(errors[0])
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise RecipeError(f"{path} must be a list, got {value!r}")
        if args and args[-1] is Ellipsis:
            return tuple(_build(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise RecipeError(f"{path} must have {len(args)} items, got {len(value)}")
        return tuple(_build(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        _, val_t = typing.get_args(tp)
        if not isinstance(value, dict):
            raise RecipeError(f"{path} must be a mapping, got {value!r}")
        return {str(k): _build(val_t, v, f"{path}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not finite_number(value):
            raise RecipeError(f"{path}={str(value)[:40]} must be a finite number")
        return float(value)
    if tp is int and type(value) is int and not 0 <= value <= MAX_INT:
        raise RecipeError(f"{path}={str(value)[:40]} must be a whole number from 0 to {MAX_INT}")
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise RecipeError(f"{path}={value!r} must be of type {getattr(tp, '__name__', tp)}")
