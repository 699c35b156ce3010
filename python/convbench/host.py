"""The machine's state, as it bears on timing (what `pyperf system show` checks): the CPU
frequency governor, turbo boost, SMT, ASLR, isolated CPUs, the load average and other busy
processes. Read from /proc and /sys (and psutil), recorded in the results, and turned into
warnings when it threatens the numbers. Pure Python: every layer may use it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["cache_bytes", "cold_copies", "state", "state_warnings"]

COLD_MEMORY_CAP = 1 << 30  # the copies a cold cell rotates through never take more than this

SYS_CPU = Path("/sys/devices/system/cpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip()
    return int(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)


def cache_bytes(level: int = 3, cpu: int = 0) -> int | None:
    """The size of the data (or unified) cache at `level` seen by `cpu`, from sysfs."""
    base = SYS_CPU / f"cpu{cpu}" / "cache"
    for index in sorted(base.glob("index*")):
        if _read(index / "level") == str(level) and _read(index / "type") in ("Data", "Unified"):
            size = _read(index / "size")
            return _size(size) if size else None
    return None


def cold_copies(set_bytes: int) -> int:
    """How many copies of a call's arrays (`set_bytes` each) to rotate through so that a call
    never finds its data in cache: twice the last-level cache (L2 where no L3 is reported),
    at least 2, and at most COLD_MEMORY_CAP in all."""
    llc = cache_bytes(3) or cache_bytes(2) or 32 << 20
    want = max(2, -(-2 * llc // max(set_bytes, 1)))
    return int(max(2, min(want, COLD_MEMORY_CAP // max(set_bytes, 1))))


def _busy_processes(threshold: float = 10.0) -> list[dict[str, Any]]:
    """Processes other than this one and its children using more than `threshold`% of a CPU
    over a short window."""
    try:
        import psutil
    except ImportError:
        return []
    me = psutil.Process()
    mine = {me.pid, *(p.pid for p in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["pid", "name"]) if p.pid not in mine]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    import time

    time.sleep(0.2)
    out = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= threshold:
            out.append({"pid": p.pid, "name": p.info["name"], "cpu_percent": pct})
    return sorted(out, key=lambda d: -d["cpu_percent"])[:10]


def state(cpus: list[int]) -> dict[str, Any]:
    """What can be read about the machine's state; None where this machine does not say."""
    governors = {c: _read(SYS_CPU / f"cpu{c}" / "cpufreq" / "scaling_governor") for c in cpus}
    boost = _read(SYS_CPU / "cpufreq" / "boost")
    smt = _read(SYS_CPU / "smt" / "active")
    no_turbo = _read(SYS_CPU / "intel_pstate" / "no_turbo")
    return {
        "governors": {str(c): g for c, g in governors.items() if g is not None} or None,
        "turbo_boost": (boost == "1")
        if boost is not None
        else ((no_turbo == "0") if no_turbo is not None else None),
        "smt_active": (smt == "1") if smt is not None else None,
        "isolated_cpus": _read(SYS_CPU / "isolated") or None,
        "aslr": _read(Path("/proc/sys/kernel/randomize_va_space")),
        "load_average": list(os.getloadavg()),
        "busy_processes": _busy_processes(),
        "l2_bytes": cache_bytes(2),
        "l3_bytes": cache_bytes(3),
    }


def state_warnings(s: dict[str, Any], cpus: list[int]) -> list[str]:
    """What in the state threatens the numbers, in words."""
    out = []
    govs = {g for g in (s.get("governors") or {}).values()}
    if govs - {"performance"}:
        out.append(
            f"CPU frequency governor is {', '.join(sorted(govs))}, not 'performance': clocks "
            "may change during a cell (pyperf system tune sets it)"
        )
    if s.get("turbo_boost"):
        out.append("turbo boost is on: the clock depends on temperature and the other cores")
    if s.get("smt_active"):
        out.append("SMT is on: a sibling hyperthread shares a measured core's execution units")
    load = s.get("load_average") or [0.0]
    if load[0] > 0.5 * len(cpus):
        out.append(
            f"load average {load[0]:.2f} on {len(cpus)} usable CPUs: other work competes with "
            "the measurements"
        )
    busy = s.get("busy_processes") or []
    if busy:
        names = ", ".join(f"{p['name']} ({p['cpu_percent']:.0f}%)" for p in busy[:3])
        out.append(f"other busy processes while the run started: {names}")
    return out
