"""What the CPU can do fast: the instruction sets that decide INT8 speed (and are reported by benchmarks)."""

from __future__ import annotations

import re
from pathlib import Path

# The instruction sets that decide INT8 and FP16 speed on a CPU (VNNI: INT8 dot products; AMX: tiles).
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "amx_bf16",
    "asimddp",
    "i8mm",
)
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # where OpenVINO's INT8 beats FP32


def cpu_isa_flags() -> list[str]:
    """Which of ISA_FLAGS the CPU reports (Linux /proc/cpuinfo ``flags`` or, on Arm, ``Features``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(match.group(1).split()) if match else set()
    return [flag for flag in ISA_FLAGS if flag in present]
