"""What machine this is: the CPU model and its widest vector extension.

Speed figures and shipped models name the CPU kind they came from, because
the same code trains about 3x faster with AVX-512 (and BF16) than with
AVX2 alone. Pure Python: reads /proc/cpuinfo where there is one.
"""

import os
import platform
import re

# Widest first: the first extension the CPU has names its kind.
VECTOR_EXTENSIONS = (
    ("AVX-512-BF16", "avx512_bf16"),
    ("AVX-512", "avx512f"),
    ("AVX2", "avx2"),
    ("AVX", "avx"),
)


def cpu_description(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """The CPU of this machine.

    Args:
      cpuinfo_path: where to read the CPU's model and flags.

    Returns:
      {"cpu_model": str, "vector_extensions": "AVX-512-BF16", "AVX-512",
      "AVX2", "AVX" or "unknown", "usable_cpus": int}.
    """
    cpu_model = platform.processor() or platform.machine()
    cpu_flags: set[str] = set()
    try:
        with open(cpuinfo_path) as file:
            text = file.read()
        names = re.findall(r"model name\s*:\s*(.*)", text)
        cpu_model = names[0].strip() if names else cpu_model
        first_flags = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
        if first_flags:
            cpu_flags = set(first_flags.group(1).split())
    except OSError:
        pass
    kind = next(
        (name for name, flag in VECTOR_EXTENSIONS if flag in cpu_flags),
        "unknown",
    )
    if hasattr(os, "sched_getaffinity"):
        usable_cpus = len(os.sched_getaffinity(0))
    else:
        usable_cpus = os.cpu_count() or 0
    return {
        "cpu_model": cpu_model,
        "vector_extensions": kind,
        "usable_cpus": usable_cpus,
    }
