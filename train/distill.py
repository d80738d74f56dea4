"""Teachers and their pseudo-labels for distillation (Distill Any Depth, section 3).

A teacher is any model :class:`edgedepth.DepthEstimator` loads (an ``.onnx`` with edgedepth metadata, a
third-party ONNX with a ModelSpec JSON, a TensorRT ``.engine``), or a ``.safetensors`` checkpoint of our
own family, which is exported to ONNX first. Teachers therefore run on any backend of the runtime.

Each unlabelled image gets a crop plan drawn from ``(seed, index)``: the global view and ``crops`` square-ish
boxes (the image's aspect, a ``scale`` fraction of its sides). The teacher predicts on the global view and
on each crop *alone*; the predictions are stored as inverse depth at ``label_size``, float16, one ``.npz``
per image, each written atomically. An image that cannot be read leaves a ``.bad`` marker and is counted.
The cache folder carries a ``key.json`` (teacher sha256, crop plan, image list); a folder whose key differs
is refused, a partial one resumes where it stopped (also after Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edgedepth.artifact import KEY_PREFIX, SPEC_FORMAT, ModelSpec
from edgedepth.errors import DataError, EdgeDepthError, InferenceError
from edgedepth.fileio import atomic_open, atomic_write_bytes, file_sha256

from .data.unlabelled import UnlabelledImages
from .evaluate import ViewEnsemble, normalisation
from .progress import LogProgress

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
TEACHER_SUFFIXES = (".onnx", ".engine", ".safetensors")


class DistillError(EdgeDepthError):
    """A teacher, or a pseudo-label cache, that cannot be used; the message names the file."""


def cache_root() -> Path:
    """Where exported teachers and pseudo-labels are kept: ``$EDGEDEPTH_CACHE`` or ~/.cache/edgedepth."""
    return Path(os.environ.get("EDGEDEPTH_CACHE", "~/.cache/edgedepth")).expanduser()


def load_spec_json(path: str | Path) -> ModelSpec:
    """A ModelSpec from a JSON object of its fields, for third-party teachers without edgedepth metadata.

    ``"preset"`` starts from a published preprocessing (``ModelSpec.preset``), e.g.
    ``{"preset": "depth-anything-v2", "output_name": "depth"}``; otherwise name, input_size, mean and std
    are required, and the other fields keep their defaults.
    """
    from dataclasses import fields as dataclass_fields

    from edgedepth.errors import InputError
    from edgedepth.textinput import load_json_input

    try:
        fields = load_json_input(path, "teacher spec")
    except InputError as exc:
        raise DistillError(str(exc)) from None
    if not isinstance(fields, dict):
        raise DistillError(f"teacher spec {path}: expected a JSON object of ModelSpec fields")
    known = sorted({f.name for f in dataclass_fields(ModelSpec)} | {"preset"})
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise DistillError(
            f"teacher spec {path}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    metadata = {KEY_PREFIX + "spec_format": SPEC_FORMAT}
    if "preset" in fields:
        try:
            metadata.update(ModelSpec.preset(str(fields.pop("preset"))).to_metadata())
        except ValueError as exc:
            raise DistillError(f"teacher spec {path}: {exc}") from None
    metadata.update({KEY_PREFIX + k: json.dumps(v) for k, v in fields.items()})
    return ModelSpec.from_metadata(metadata, source=str(path))


def export_checkpoint(checkpoint: Path, sha256: str) -> Path:
    """Our own checkpoint as a dynamic-shape ONNX teacher, cached by the checkpoint's sha256."""
    out = cache_root() / "teachers" / f"{sha256[:16]}.onnx"
    if not out.is_file():
        from .checkpoint import load_trained
        from .export import export_onnx

        model = load_trained(checkpoint)
        export_onnx(model, out, dynamic=True, provenance={"checkpoint": checkpoint.name})
    return out


class Teacher:
    """A depth model through the runtime: ``predict(bgr)`` -> float32 inverse depth at the image's size.

    ``spec`` (a JSON file of ModelSpec fields) loads a third-party ONNX; the runtime inverts models whose
    spec says they output depth. ``long_sides`` (several input sizes) and ``flip`` label each view as a
    :class:`~edgedepth_train.evaluate.ViewEnsemble` of the teacher; by default it runs at its own size.
    Every prediction is checked: an output that is not a finite, varying 2-D map raises DistillError naming
    the file.
    """

    def __init__(
        self,
        path: str | Path,
        spec: str | Path | None = None,
        backend: str = "auto",
        threads: int | None = None,
        long_sides: tuple[int, ...] = (),
        flip: bool = False,
    ) -> None:
        from edgedepth import DepthEstimator

        self.path = Path(path).expanduser()
        if self.path.suffix.lower() not in TEACHER_SUFFIXES:
            raise DistillError(
                f"teacher {self.path}: unsupported file type {self.path.suffix!r}; use one of "
                f"{', '.join(TEACHER_SUFFIXES)}"
            )
        if not self.path.is_file():
            raise DistillError(f"teacher {self.path} does not exist")
        self.sha256 = file_sha256(self.path)
        model = self.path
        if self.path.suffix.lower() == ".safetensors":
            model = export_checkpoint(self.path, self.sha256)
        model_spec = None if spec is None else load_spec_json(spec)
        self.estimators = [
            DepthEstimator(model, backend=backend, threads=threads, spec=model_spec, long_side=side)
            for side in (long_sides or (None,))
        ]
        self.views = ViewEnsemble(self.estimators, flip)
        self.spec = self.estimators[0].spec

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        try:
            out = np.asarray(self.views.predict(bgr).inverse_depth, dtype=np.float32)
        except (InferenceError, ValueError, IndexError, cv2.error) as exc:
            raise DistillError(f"teacher {self.path}: its output is not a depth map ({exc})") from None
        if out.ndim != 2 or out.shape != bgr.shape[:2]:
            raise DistillError(f"teacher {self.path}: output of shape {out.shape} is not a depth map")
        if not np.isfinite(out).all():
            raise DistillError(f"teacher {self.path}: output holds NaN or inf")
        if float(out.max() - out.min()) <= 1e-12:
            raise DistillError(f"teacher {self.path}: output is constant, not depth")
        return out  # the runtime has inverted the output of depth (not inverse-depth) models

    def close(self) -> None:
        for estimator in self.estimators:
            estimator.close()


@dataclass(frozen=True)
class CropPlan:
    """The views the teacher labels per image: the global view and ``crops`` boxes.

    Each box has the image's aspect and sides ``scale`` times the image's, at a uniform position. Labels are
    stored at ``label_size`` (h, w).
    """

    crops: int = 2
    scale: tuple[float, float] = (0.35, 0.65)
    label_size: tuple[int, int] = (192, 256)
    seed: int = 0
    teacher_sides: tuple[int, ...] = ()  # the teacher's input long sides, averaged (empty: its own size)
    teacher_flip: bool = False  # also average the mirrored view

    def key(self) -> dict:
        """The plan for a cache key: the teacher's views only when set, so that caches made before they
        existed keep their keys."""
        key = asdict(self)
        for name, default in (("teacher_sides", ()), ("teacher_flip", False)):
            if key[name] == default:
                del key[name]
        return key

    def boxes(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        """(crops, 4) pixel boxes ``(x0, y0, x1, y1)`` for image ``index`` of size ``hw``."""
        h, w = hw
        rng = np.random.default_rng([self.seed, index])
        out = np.zeros((self.crops, 4), dtype=np.int64)
        for k in range(self.crops):
            s = rng.uniform(*self.scale)
            cw, ch = max(2, round(w * s)), max(2, round(h * s))
            x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            out[k] = (x0, y0, x0 + cw, y0 + ch)
        return out


def label_views(teacher: Teacher, bgr: np.ndarray, boxes: np.ndarray, label_size: tuple[int, int]) -> dict:
    """The teacher's inverse depth on the global view and on each box alone, resized to ``label_size``."""
    lh, lw = label_size
    h, w = bgr.shape[:2]

    def label(view: np.ndarray) -> np.ndarray:
        return cv2.resize(teacher.predict(view), (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float16)

    crops = [label(np.ascontiguousarray(bgr[y0:y1, x0:x1])) for x0, y0, x1, y1 in boxes]
    return {
        "global": label(bgr),
        "crops": np.stack(crops) if crops else np.zeros((0, lh, lw), np.float16),
        # Boxes as fractions of the image's sides: the same region at any resolution.
        "boxes": (boxes / np.array([w, h, w, h], dtype=np.float64)).astype(np.float32),
    }


class PseudoLabelCache:
    """One teacher's pseudo-labels for one image set and crop plan, in ``root`` (see the module doc)."""

    def __init__(
        self, root: str | Path | None, teacher_sha256: str, images: UnlabelledImages, plan: CropPlan
    ):
        listing = "\n".join(images._describe(i) for i in range(len(images)))
        self.key = {
            "format": CACHE_FORMAT,
            "teacher_sha256": teacher_sha256,
            "plan": plan.key(),
            "images": len(images),
            "images_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        }
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.root = (
            Path(root).expanduser()
            if root is not None
            else cache_root() / "pseudo" / f"{teacher_sha256[:12]}-{digest[:8]}"
        )
        self.images, self.plan = images, plan
        self._check_key()

    def _check_key(self) -> None:
        key_file = self.root / "key.json"
        if key_file.is_file():
            found = json.loads(key_file.read_text())
            if found != json.loads(json.dumps(self.key)):
                diff = sorted(k for k in self.key if found.get(k) != json.loads(json.dumps(self.key[k])))
                raise DistillError(
                    f"pseudo-label cache {self.root} is stale: it was made with a different "
                    f"{', '.join(diff)}; delete it or choose another cache folder"
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(key_file, json.dumps(self.key, indent=1).encode())

    def _file(self, index: int, suffix: str = ".npz") -> Path:
        return self.root / f"{index:06d}{suffix}"

    def missing(self) -> list[int]:
        return [i for i in range(len(self.images)) if not (self._file(i).is_file() or self.bad(i))]

    def bad(self, index: int) -> bool:
        return self._file(index, ".bad").is_file()

    @property
    def bad_count(self) -> int:
        return len(list(self.root.glob("*.bad")))

    def build(self, teacher: Teacher, progress: bool = True) -> int:
        """Label every image not yet in the cache; returns how many were labelled now."""
        todo = self.missing()
        if todo and progress and not sys.stderr.isatty():  # a log gets one plain line, not a bar's redraws
            log.info("pseudo-labelling %d images with %s", len(todo), teacher.path.name)
        bar_off = not progress or not todo or not sys.stderr.isatty()
        plain = (
            LogProgress(f"pseudo-labels {teacher.path.name}", len(todo), "img")
            if progress and bar_off
            else None
        )
        try:
            for done, i in enumerate(tqdm(todo, desc=f"pseudo-labels {teacher.path.name}", disable=bar_off)):
                if plain is not None and done:
                    plain.update(done)
                try:
                    bgr = self.images._load(i)["bgr"]
                except DataError as exc:
                    log.warning("skipping unreadable image %s: %s", self.images._describe(i), exc)
                    atomic_write_bytes(self._file(i, ".bad"), str(exc).encode())
                    continue
                views = label_views(teacher, bgr, self.plan.boxes(i, bgr.shape[:2]), self.plan.label_size)
                with atomic_open(self._file(i)) as fh:
                    np.savez(fh, **views)
            if plain is not None:
                plain.update(len(todo))
        finally:
            self.images.close()  # training forks its data workers next: no decoder threads may be running
        return len(todo)

    def complete(self) -> bool:
        return not self.missing()

    def labels(self, index: int) -> dict[str, np.ndarray] | None:
        """The stored views of image ``index``, or None for an unreadable image."""
        if self.bad(index):
            return None
        with np.load(self._file(index)) as data:
            return {k: data[k] for k in data.files}

    def usable(self) -> list[int]:
        """Indices of the images that have labels (all but the unreadable ones)."""
        return [i for i in range(len(self.images)) if not self.bad(i)]

    def units(self, samples: int = 256) -> tuple[float, float]:
        """The teacher's output units over this image set: (median, mean absolute deviation) of the global
        labels of up to ``samples`` evenly spaced images. One affine for the whole set, so dividing by it
        keeps every relation between images and views (see ``PseudoLabelled``)."""
        usable = self.usable()
        picked = usable[:: max(1, len(usable) // samples)][:samples]
        maps = [v["global"].astype(np.float32).ravel() for i in picked if (v := self.labels(i)) is not None]
        if not maps:
            return 0.0, 1.0
        return normalisation(np.concatenate(maps))


def pseudo_labels(
    teacher: str | Path,
    images: UnlabelledImages,
    plan: CropPlan,
    cache: str | Path | None = None,
    spec: str | Path | None = None,
    backend: str = "auto",
    threads: int | None = None,
    expected_sha256: str | None = None,
) -> PseudoLabelCache:
    """Open (and, where incomplete, build) a teacher's pseudo-label cache for ``images``. With
    ``expected_sha256`` (a recipe that pins its teacher) any other teacher file is refused."""
    path = Path(teacher).expanduser()
    if not path.is_file():
        raise DistillError(f"teacher {path} does not exist")
    digest = file_sha256(path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise DistillError(
            f"teacher {path} has sha256 {digest}, but the recipe pins {expected_sha256}: it is another model"
        )
    labels = PseudoLabelCache(cache, digest, images, plan)
    if not labels.complete():
        model = Teacher(path, spec, backend, threads, long_sides=plan.teacher_sides, flip=plan.teacher_flip)
        try:
            labels.build(model)
        finally:
            model.close()
    if labels.bad_count:
        log.warning("%d of %d images could not be read and were skipped", labels.bad_count, len(images))
    return labels
