"""How a stream is doing: the whole stream's statistics, each source's, and how they ended."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EndReason(StrEnum):
    """How a source, or the whole stream, ended (``RUNNING`` while it runs)."""

    RUNNING = ""
    END_OF_STREAM = "end of stream"
    CLOSED = "closed"
    MAX_FRAMES = "max_frames"
    ERROR = "error"


@dataclass(frozen=True)
class SourceStats:
    """One source: frames delivered and their rate, drops, its state, and how it ended."""

    index: int
    uri: str
    frames: int
    fps: float
    dropped: int
    timeouts: int
    capture_fps: float
    state: str  # the source's SourceState value
    end: EndReason
    error: str | None = None  # why, when ``end`` is ERROR

    @property
    def ended_by(self) -> str:
        """The end as one text (``"error: ..."`` for a failure), as earlier releases gave it."""
        return f"error: {self.error}" if self.end is EndReason.ERROR else self.end.value


@dataclass(frozen=True)
class StreamStats:
    """The whole stream, and each source in ``sources``."""

    frames: int  # over all sources
    elapsed_s: float
    fps: float  # frames delivered to the caller per second, over all sources
    batches: int  # model calls
    mean_batch: float  # frames per model call
    infer_ms_median: float  # per frame (a batch's time shared by its frames)
    preprocess_ms_median: float
    latency_ms_median: float  # capture to delivery
    end: EndReason
    sources: list[SourceStats]

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.sources)

    @property
    def timeouts(self) -> int:
        return sum(s.timeouts for s in self.sources)

    @property
    def capture_fps(self) -> float:
        return sum(s.capture_fps for s in self.sources)

    @property
    def source_state(self) -> str:
        """The state of the one source (several: their states, comma-separated)."""
        return ",".join(s.state for s in self.sources)

    @property
    def ended_by(self) -> str:
        """The stream's end as one text, as earlier releases gave it for one source."""
        failed = [s for s in self.sources if s.end is EndReason.ERROR]
        if self.end is EndReason.ERROR and failed:
            return failed[0].ended_by
        return self.end.value
