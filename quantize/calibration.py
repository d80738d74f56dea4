"""Calibration data: image folders, videos (sampled frames) and RGB-D folders, through edgedepth's preprocessing.

Every frame goes through ``edgedepth.preprocess.preprocess`` with the model's own ModelSpec, so calibration
sees exactly what the runtime feeds the model; there is no second resize/normalise here. The sampling plan is
deterministic: still images (image folders, RGB-D ``rgb.png``) are used in full, the remaining budget is spread
evenly over the videos, and each video's share is evenly spaced over its frames. Unreadable images are skipped
and counted. The NNCF quantizer and the TensorRT calibrators both read :class:`CalibrationData`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgedepth.artifact import ModelSpec
from edgedepth.capture import GLOB_CHARS, IMAGE_SUFFIXES, SourceKind, VideoSource, list_images
from edgedepth.errors import EdgeDepthError, InputError, SourceError
from edgedepth.fileio import file_sha256
from edgedepth.imageio import load_image
from edgedepth.preprocess import preprocess
from edgedepth.rgbd import frame_folders, rgb_file

from .errors import CalibrationError

DEFAULT_FRAMES = 300
DEFAULT_MIN_FRAMES = 100
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class CalibrationSource:
    """One calibration source as given (``name``) and the files it resolves to."""

    name: str
    kind: SourceKind
    files: tuple[Path, ...]
    frame_count: int = 0  # videos only

    def label(self, path: Path) -> str:
        """A machine-independent name for a file of this source: the source's base name plus the relative path."""
        root = Path(self.name.rstrip("/\\"))
        base = root.name or "."
        try:
            return f"{base}/{path.relative_to(root).as_posix()}" if root.is_dir() else path.name
        except ValueError:
            return path.name


@dataclass(frozen=True)
class CalibrationItem:
    """One planned frame: a file of a source and, for videos, the frame index."""

    source: CalibrationSource
    path: Path
    frame_index: int = 0


@dataclass
class CalibrationData:
    """Preprocessed model inputs (1x3xHxW float32 each) plus what is needed to describe and reproduce them."""

    inputs: list[np.ndarray]
    items: list[CalibrationItem]
    skipped: list[str]
    input_hw: tuple[int, int]
    sha256: str
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.inputs)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive N x 3 x H x W batches (the last one may be smaller), e.g. for a TensorRT calibrator."""
        for start in range(0, len(self.inputs), batch_size):
            yield np.concatenate(self.inputs[start : start + batch_size])

    def summary(self) -> dict[str, object]:
        """What the report and the artifact's provenance record about this set."""
        return {
            "frames": len(self.inputs),
            "skipped": len(self.skipped),
            "skipped_files": self.skipped[:20],
            "input_size": list(self.input_hw),
            "sha256": self.sha256,
            "sources": self.sources,
        }


def resolve_sources(source: str | os.PathLike[str]) -> list[CalibrationSource]:
    """Classify one argument: an RGB-D folder; a folder of images and/or videos (each video its own source);
    an image glob; or one image or video file."""
    name = os.fspath(source)
    path = Path(name)
    if path.is_dir():
        rgb = tuple(p for p in map(rgb_file, frame_folders(path)) if p is not None)
        if rgb:
            return [CalibrationSource(name, SourceKind.RGBD, rgb)]
        files = sorted(p for p in path.iterdir() if p.is_file())
        images = tuple(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
        found = [CalibrationSource(name, SourceKind.IMAGES, images)] if images else []
        found += [
            video_source(os.path.join(name, p.name)) for p in files if p.suffix.lower() in VIDEO_SUFFIXES
        ]
        if not found:
            raise CalibrationError(
                f"calibration folder {name!r} holds no images ({', '.join(IMAGE_SUFFIXES)}), videos "
                f"({', '.join(VIDEO_SUFFIXES)}) or RGB-D frame folders"
            )
        return found
    if not path.exists() and any(c in name for c in GLOB_CHARS):
        try:
            return [CalibrationSource(name, SourceKind.IMAGES, tuple(list_images(name)))]
        except SourceError as exc:
            raise CalibrationError(f"calibration source {name!r}: {exc}") from None
    if not path.is_file():
        raise CalibrationError(
            f"calibration source {name!r} does not exist; give image folders/globs, videos or RGB-D folders"
        )
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [CalibrationSource(name, SourceKind.IMAGES, (path,))]
    return [video_source(name)]


def video_source(name: str) -> CalibrationSource:
    return CalibrationSource(name, SourceKind.FILE, (Path(name),), count_video_frames(Path(name)))


def count_video_frames(path: Path) -> int:
    """The number of frames that actually decode, counted by grabbing them all.

    Containers' own counts (CAP_PROP_FRAME_COUNT) can be wrong: OpenCV's tree.avi claims 444 frames and
    decodes 68. Planning from a wrong count would leave most of that video's share unread.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise CalibrationError(
                f"calibration source {str(path)!r} is neither an image nor a readable video"
            )
        count = 0
        while capture.grab():
            count += 1
        return count
    finally:
        capture.release()


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` distinct indices spread evenly over ``range(total)`` (centred bins); all of them if fewer."""
    if count >= total:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


def plan_calibration(sources: Sequence[CalibrationSource], num_frames: int) -> list[CalibrationItem]:
    """The frames to use: still images first (evenly subsampled if too many), then the videos' shares."""
    stills = [CalibrationItem(s, f) for s in sources if s.kind is not SourceKind.FILE for f in s.files]
    if len(stills) >= num_frames:
        return [stills[i] for i in evenly_spaced(len(stills), num_frames)]
    plan, budget = stills, num_frames - len(stills)
    videos = sorted((s for s in sources if s.kind is SourceKind.FILE), key=lambda s: s.frame_count)
    shares: dict[int, int] = {}
    for position, video in enumerate(videos):  # shortest first, so unused shares pass to longer videos
        take = min(video.frame_count, -(-budget // (len(videos) - position)))
        shares[id(video)] = take
        budget -= take
    for video in (s for s in sources if s.kind is SourceKind.FILE):
        indices = evenly_spaced(video.frame_count, shares[id(video)])
        plan += [CalibrationItem(video, video.files[0], i) for i in indices]
    return plan


def iter_frames(plan: Sequence[CalibrationItem]) -> Iterator[tuple[CalibrationItem, np.ndarray | None]]:
    """Decode the planned frames in order as BGR uint8; an unreadable one comes back as None."""
    video_items: dict[Path, set[int]] = {}
    for item in plan:
        if item.source.kind is SourceKind.FILE:
            video_items.setdefault(item.path, set()).add(item.frame_index)
    decoded: dict[Path, dict[int, np.ndarray]] = {}
    for item in plan:
        if item.source.kind is not SourceKind.FILE:
            try:
                yield item, load_image(item.path)
            except InputError:
                yield item, None
            continue
        if item.path not in decoded:  # read each video once, keeping only its planned frames
            decoded[item.path] = read_video_frames(item.path, video_items[item.path])
        yield item, decoded[item.path].pop(item.frame_index, None)


def read_video_frames(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    """The frames at ``indices`` of a video file, read in order through VideoSource."""
    frames: dict[int, np.ndarray] = {}
    last = max(indices, default=-1)
    try:
        with VideoSource(path, timeout_s=10.0, reconnect=False) as source:
            for frame in source:
                if frame.index in indices and frame.image is not None:
                    frames[frame.index] = frame.image
                if frame.index >= last:
                    break
    except SourceError as exc:
        raise CalibrationError(f"calibration video {str(path)!r} cannot be read: {exc}") from None
    return frames


def gather_bgr_frames(
    sources: Sequence[str | os.PathLike[str]], max_frames: int
) -> list[tuple[str, np.ndarray]]:
    """Up to ``max_frames`` decoded BGR frames (name, image) from the sources, e.g. for the agreement gate."""
    plan = plan_calibration([r for s in sources for r in resolve_sources(s)], max_frames)
    return [
        (f"{item.source.label(item.path)}#{item.frame_index}", bgr)
        for item, bgr in iter_frames(plan)
        if bgr is not None
    ]


def calibration_hash(items: Sequence[CalibrationItem], input_hw: tuple[int, int]) -> str:
    """sha256 over the used files (machine-independent name and content digest), frame indices and input size."""
    digest = hashlib.sha256(f"input_size={input_hw[0]}x{input_hw[1]}\n".encode())
    contents: dict[Path, str] = {}
    for item in items:
        if item.path not in contents:
            contents[item.path] = file_sha256(item.path)
        line = f"{item.source.label(item.path)}\t{item.frame_index}\t{contents[item.path]}\n"
        digest.update(line.encode())
    return digest.hexdigest()


def gather_calibration(
    sources: Sequence[str | os.PathLike[str]],
    spec: ModelSpec,
    num_frames: int = DEFAULT_FRAMES,
    min_frames: int = DEFAULT_MIN_FRAMES,
    input_size: tuple[int, int] | None = None,
) -> CalibrationData:
    """Plan, decode and preprocess the calibration frames; refuse (CalibrationError) below ``min_frames``.

    ``input_size`` (h, w) defaults to the spec's input size; each frame is letterboxed/stretched to it by
    :func:`edgedepth.preprocess.preprocess` exactly as at run time.
    """
    if num_frames < 1 or min_frames < 1:
        raise CalibrationError(f"num_frames={num_frames} and min_frames={min_frames} must both be at least 1")
    if not sources:
        raise CalibrationError("no calibration sources given; pass image folders, videos or RGB-D folders")
    input_hw = tuple(input_size or spec.input_size)
    try:
        spec.with_updates(input_size=input_hw)  # validates the size against size_multiple
    except ValueError as exc:
        raise CalibrationError(f"calibration input_size={input_hw}: {exc}") from None
    resolved = [r for s in sources for r in resolve_sources(s)]
    names = ", ".join(repr(s.name) for s in resolved)
    plan = plan_calibration(resolved, num_frames)
    if len(plan) < min_frames:
        raise CalibrationError(
            f"calibration needs at least {min_frames} frames (min_frames) but the sources {names} provide "
            f"only {len(plan)}; add images or videos, or lower min_frames"
        )
    inputs, used, skipped = [], [], []
    for item, bgr in iter_frames(plan):
        if bgr is None:
            where = f"{item.source.label(item.path)}" + (
                f"#{item.frame_index}" if item.source.kind is SourceKind.FILE else ""
            )
            skipped.append(where)
            continue
        try:
            x, _ = preprocess(bgr, spec, input_hw)  # type: ignore[arg-type]
        except EdgeDepthError:
            skipped.append(item.source.label(item.path))
            continue
        inputs.append(x)
        used.append(item)
    if len(inputs) < min_frames:
        raise CalibrationError(
            f"calibration has {len(inputs)} usable frames, below the minimum of {min_frames} (min_frames): "
            f"{len(skipped)} of {len(plan)} planned frames from {names} were corrupt or unreadable"
        )
    used_per_source = [sum(item.source is s for item in used) for s in resolved]
    source_names = [
        f"{Path(s.name.rstrip('/')).name} ({s.kind.value}, {n} frames)"
        for s, n in zip(resolved, used_per_source, strict=True)
    ]
    return CalibrationData(inputs, used, skipped, input_hw, calibration_hash(used, input_hw), source_names)  # type: ignore[arg-type]
