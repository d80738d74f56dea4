"""The live ``edgedepth`` commands: ``stream`` (one source, or several in one batch), ``demo`` and ``serve``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cli_options import add_model_options, add_view_options, estimator_from, positive_int
from .clouds import add_cloud_options, check_cloud_options, describe_fit, write_cloud
from .embedded import DEMO_CLIP
from .errors import InputError


def source_arg(text: str) -> object:
    """A camera index as an int (``0``), anything else as given."""
    return int(text) if text.isdigit() else text


def ros_outputs_from(args: argparse.Namespace, sources: int) -> list[Any]:
    """The ROS 2 outputs asked for: a McapRecorder (--record) and a Ros2Publisher (--ros2), their files read
    and the recording's destination checked before the model loads."""
    if not (getattr(args, "record", None) or getattr(args, "ros2", False)):
        return []
    from .intrinsics import Intrinsics
    from .output.ros import McapRecorder, RecordOptions

    scaled = args.intrinsics and (args.camera_height is not None or args.metric_points is not None)
    if args.ros_cloud_every and not scaled:
        raise InputError(
            "--ros-cloud-every needs --intrinsics and a scale (--camera-height or --metric-points)"
        )
    metric = check_cloud_options(args, True) if scaled else None  # reads the intrinsics too
    options = RecordOptions(
        namespace=args.ros_namespace,
        frame_id=args.frame_id,
        intrinsics=metric.intrinsics
        if metric
        else Intrinsics.load(args.intrinsics)
        if args.intrinsics
        else None,
        metric=metric,
        cloud_every=args.ros_cloud_every or 0,
    )
    outputs: list[Any] = []
    if args.record:
        outputs.append(McapRecorder(args.record, options, sources=sources, overwrite=args.overwrite))
    if args.ros2:
        from .output.dds import Ros2Publisher

        outputs.append(Ros2Publisher(options, sources=sources))
    return outputs


def run_stream(args: argparse.Namespace, sources: list[object], save: str | None, show: bool) -> int:
    """``stream`` and ``demo``: one source or several through one model (several: one batch per tick),
    each shown and/or saved side by side (several: NAME_i.mp4 and a window each), recorded or published
    for ROS 2, with point clouds; progress, FPS and each source's end reported."""
    from .capture import SourceState, StatusEvent

    several = len(sources) > 1
    cloud_settings = check_cloud_options(args, bool(args.ply_every))
    clouds = Path(args.ply_dir)
    if args.ply_every:
        check_cloud_folder(clouds, args.overwrite)
    progress = Progress()

    def report(event: StatusEvent) -> None:  # from a capture thread: a stall, an outage, a recovery
        if event.state not in (SourceState.RUNNING, SourceState.ENDED, SourceState.CLOSED):
            progress.end(f"source {event.state.value}: {event.detail}")

    options = {"max_frames": args.max_frames, "on_status": report, "stabilize": args.stabilize,
               "batch": getattr(args, "batch", True), "loop": getattr(args, "loop", False)}  # fmt: skip
    # Before the model loads: the outputs' files read, their destinations and addresses checked.
    sinks = ros_outputs_from(args, len(sources))  # outputs that take (frame, result, index, stamp)
    web_target = web_target_from(args)
    with estimator_from(args) as est, est.stream(sources if several else sources[0], **options) as frames:
        if web_target is not None:  # it renders and closes like the ROS outputs
            sinks.append(web_output(args, web_target, frames, est))
        for x in frames.stats.sources:
            if frames.sources[x.index] is None:  # it could not be opened; the others go on
                print(f"warning: [{x.index}] {x.ended_by}", file=sys.stderr)
        outputs = [video_outputs(args, save, show, i, src, several) for i, src in enumerate(frames.sources)]
        delivered = [0] * len(sources)
        try:
            for item in frames:
                i, k = item.index, delivered[item.index]
                delivered[i] += 1
                if not all([out.render(item.frame, item.result) for out in outputs[i]]):
                    break
                for out in sinks:
                    out.render(item.frame, item.result, i, item.captured_at)
                if cloud_settings is not None and k % args.ply_every == 0:
                    name = f"cloud_{i}_{k:06d}.ply" if several else f"cloud_{k:06d}.ply"
                    fit = write_cloud(cloud_settings, item.result, item.frame, clouds / name)
                    progress.end(f"{name}: {describe_fit(fit)}")
                progress.update(lambda: progress_line(frames.stats, several))
        except KeyboardInterrupt:
            progress.end("interrupted")
        finally:
            for out in (o for targets in outputs for o in targets):
                out.close()
            for out in sinks:
                out.close()
        s = frames.stats
    for out in sinks:
        print(out.summary())
    model_fps = 1e3 / s.infer_ms_median if s.infer_ms_median > 0 else 0.0
    progress.end(f"{s.frames} frames in {s.elapsed_s:.1f} s: stream {s.fps:.1f} FPS, model-only {model_fps:.1f} "
                 f"FPS (median infer {s.infer_ms_median:.1f} ms a frame), median latency {s.latency_ms_median:.1f} "
                 f"ms, dropped {s.dropped}, timeouts {s.timeouts}"
                 + (f", {s.mean_batch:.2f} frames per model call" if several else "")
                 + f"; backend {est.backend_name}")  # fmt: skip
    if several:
        for x in s.sources:
            print(
                f"  [{x.index}] {x.uri}: {x.frames} frames, {x.fps:.1f} FPS, dropped {x.dropped}, {x.ended_by}"
            )
    elif save:
        print(f"saved {save}")
    return 0


def web_target_from(args: argparse.Namespace) -> tuple[str, int] | None:
    """``--out http://HOST:PORT``, checked before the model loads (with a warning off the loopback)."""
    if not getattr(args, "out", None):
        return None
    import ipaddress

    from .output.web import check_view_options, parse_web_target

    host, port = parse_web_target(args.out)
    check_view_options(args.cmap, args.view_fps)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        print(f"warning: serving on {host}: anyone who can reach this machine can watch the camera",
              file=sys.stderr)  # fmt: skip
    return host, port


def web_output(args: argparse.Namespace, target: tuple[str, int], frames: Any, est: Any) -> Any:
    """The web viewer for ``frames``: one view per source, ``/stats`` from the stream's statistics."""
    from .output.web import WebOutput
    from .serve import stream_stats

    web = WebOutput(*target, sources=len(frames.sources), cmap=args.cmap, view_fps=args.view_fps,
                    allow_hosts=args.allow_host, stats=lambda: stream_stats(frames.stats, est))  # fmt: skip
    print(f"serving {' '.join(map(str, args.source))} on {web.url} (Ctrl-C stops)", flush=True)
    return web


def video_outputs(
    args: argparse.Namespace, save: str | None, show: bool, index: int, source: Any, several: bool
) -> list[Any]:
    """Source ``index``'s file (``save``, or NAME_index.ext of it when there are several) and window; none
    for a source that could not be opened (None)."""
    from .output import WINDOW, VideoOutput

    if source is None:
        return []
    style = {"cmap": args.cmap, "invert": args.invert}
    outputs = []
    if save:
        path = Path(save).with_name(f"{Path(save).stem}_{index}{Path(save).suffix}") if several else save
        outputs.append(VideoOutput(path, fps=source.fps_hint, overwrite=args.overwrite, **style))
    if show:
        outputs.append(VideoOutput(WINDOW, title=f"edgedepth {index}" if several else "edgedepth", **style))
    return outputs


def progress_line(s: Any, several: bool) -> str:
    if not several:
        return (f"{s.frames} frames  {s.fps:5.1f} FPS  infer {s.infer_ms_median:5.1f} ms  "
                f"latency {s.latency_ms_median:6.1f} ms  dropped {s.dropped}")  # fmt: skip
    per = "  ".join(f"[{x.index}] {x.fps:4.1f}" for x in s.sources)
    return f"{s.frames} frames  {s.fps:5.1f} FPS total  {per}  batch {s.mean_batch:.1f}"


class Progress:
    """One status line: rewritten in place (carriage return) on a terminal, printed as a plain line every
    ``every_s`` seconds when the output is a log file or a pipe."""

    def __init__(self, every_s: float = 1.0, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._last = time.perf_counter()
        self._open = False  # a carriage-return line is showing

    def update(self, line: Callable[[], str]) -> None:
        """Show ``line()`` if ``every_s`` has passed since the last one (built only then: it reads stats)."""
        if time.perf_counter() - self._last < self.every_s:
            return
        self._last = time.perf_counter()
        text = line()
        if self.tty:
            print(f"\r{text}", end="", flush=True, file=self.stream)
            self._open = True
        else:
            print(text, flush=True, file=self.stream)

    def end(self, text: str) -> None:
        if self._open:
            print(file=self.stream)
            self._open = False
        print(text, flush=True, file=self.stream)


def cmd_stream(args: argparse.Namespace) -> int:
    return run_stream(args, [source_arg(s) for s in args.source], args.save, args.show)


def cmd_demo(args: argparse.Namespace) -> int:
    args.overwrite = True  # the demo replaces its own output each run
    return run_stream(args, [str(DEMO_CLIP)], args.save, args.show)


def check_cloud_folder(folder: Path, overwrite: bool) -> None:
    """The --ply-dir folder: created, or an existing folder whose clouds --overwrite may replace."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--ply-dir {folder} is not a folder")
    existing = sorted(folder.glob("cloud_*.ply")) if folder.is_dir() else []
    if existing and not overwrite:
        raise InputError(f"--ply-dir {folder} holds {len(existing)} cloud(s), e.g. {existing[0].name}; "
                         "pass --overwrite to replace them, or name another folder")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve SRC...``: ``stream SRC... --out http://HOST:PORT``, files looping, until Ctrl-C."""
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: give a TCP port between 1 and 65535 (0 picks a free one)")
    args.out = f"http://[{args.host}]:{args.port}" if ":" in args.host else f"http://{args.host}:{args.port}"
    return run_stream(args, [source_arg(s) for s in args.source], None, False)


def add_live_commands(sub: argparse._SubParsersAction) -> None:
    for name, func, help_text in (("stream", cmd_stream, "depth for a camera, video, folder or URL"),
                                  ("demo", cmd_demo, "the embedded model on the embedded clip")):  # fmt: skip
        p = sub.add_parser(name, help=help_text)
        if name == "stream":
            p.add_argument(
                "source",
                nargs="+",
                help="camera index, /dev/videoN, file, folder, glob, URL or GStreamer pipeline; several "
                "run as one batch per tick (live and file sources may be mixed)",
            )
            p.add_argument(
                "--batch",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="with several sources: one model call for the ready frames (default), or one each",
            )
        p.add_argument("--show", action="store_true", help="show a window (needs a display)")
        p.add_argument(
            "--out", metavar="http://HOST:PORT",
            help="also serve a live web viewer there, one view per source (edgedepth serve does only this)",
        )  # fmt: skip
        add_web_options(p)
        p.add_argument(
            "--save", default="demo_depth.mp4" if name == "demo" else None, help="side-by-side .mp4/.avi"
        )
        p.add_argument(
            "--max-frames",
            type=positive_int,
            help="stop after this many frames (with several sources: counted over all of them; default: all)",
        )
        p.add_argument(
            "--stabilize",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="align each frame's depth to the previous one, against flicker (default: on)",
        )
        p.add_argument("--ply-every", type=positive_int, help="write a metric point cloud every N frames")
        if name == "stream":
            p.add_argument(
                "--overwrite",
                action="store_true",
                help="replace --save, --record and --ply-dir outputs that exist",
            )
            g = p.add_argument_group('ROS 2 recording (pip install "edgedepth[ros2]")')
            g.add_argument(
                "--record",
                metavar="FILE.mcap",
                help="record sensor_msgs topics (JPEG image, relative inverse depth, confidence; metric depth and "
                "camera_info with --intrinsics and a scale) into an MCAP file, rosbag2's storage format",
            )
            g.add_argument(
                "--ros-cloud-every",
                type=positive_int,
                metavar="N",
                help="also a coloured PointCloud2 (NS/points) every N frames; needs --intrinsics and a scale",
            )
            g.add_argument(
                "--ros2",
                action="store_true",
                help="publish the same topics live over DDS (Cyclone DDS; ROS_DOMAIN_ID, sensor-data QoS)",
            )
            g.add_argument(
                "--ros-namespace", default="/camera", help="topic namespace (several sources: _0, _1, ...)"
            )
            g.add_argument(
                "--frame-id", default="camera", help="header frame_id (several sources: _0, _1, ...)"
            )
        p.add_argument(
            "--ply-dir", default="clouds", help="folder for the --ply-every clouds (default: clouds)"
        )
        add_cloud_options(p)
        add_model_options(p)
        add_view_options(p)
        p.set_defaults(func=func)

    p = sub.add_parser(
        "serve", help="a live web viewer: camera and depth side by side, statistics, snapshots"
    )
    p.add_argument(
        "source", nargs="+",
        help="camera index, /dev/videoN, file (looped), folder, URL or GStreamer pipeline; several: one view each",
    )  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface; ::1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    add_web_options(p)
    p.add_argument("--stabilize", action=argparse.BooleanOptionalAction, default=True, help="see stream")
    add_model_options(p)
    p.add_argument("--cmap", default="turbo", help="turbo, inferno, magma, viridis or gray")
    # What serve does not ask for: the stream's other options, off.
    p.set_defaults(func=cmd_serve, loop=True, max_frames=None, ply_every=None, ply_dir="clouds", invert=False,
                   overwrite=False, batch=True)  # fmt: skip


def add_web_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="a host name browsers may use to reach the viewer (IP addresses and localhost always work)",
    )  # fmt: skip
    p.add_argument("--view-fps", type=float, default=15.0, help="most frames a second sent to each viewer")
