"""Helpers shared by the speed benchmarks: the machine, timing, percentiles, memory,
temporary folders, and printing/saving results. Benchmarks print numbers; nothing here
asserts on time."""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent / "shared"
CHEAP = BENCH / "cheap_embedder.py"


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def load_text() -> str:
    one, five, fifteen = load_average()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict:
    """What the numbers were measured on (the machine is shared: load average too)."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024 / 1024
    try:
        import onnxruntime
        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(ram, 1),
            "python": platform.python_version(), "numpy": np.__version__,
            "onnxruntime": ort, "load_average": load_text()}


def maxrss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentiles(ms: list[float]) -> dict:
    a = np.asarray(ms, dtype=float)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p90_ms": round(float(np.percentile(a, 90)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2), "mean_ms": round(float(a.mean()), 2)}


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


@contextlib.contextmanager
def workdir(base: str | None, keep: bool, prefix: str):
    """A fresh temporary folder under `base` (default: the system temp folder)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def data_dir(path: Path):
    """Point LENSLINK_DATA_DIR (databases, token) at `path` for this process and its
    children, so a benchmark never touches the user's own data folder."""
    old = {k: os.environ.get(k) for k in ("LENSLINK_DATA_DIR", "LENSLINK_DB", "LENSLINK_EMBEDDER")}
    os.environ["LENSLINK_DATA_DIR"] = str(path)
    os.environ.pop("LENSLINK_DB", None)
    os.environ.pop("LENSLINK_EMBEDDER", None)
    try:
        yield path
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lenslink_bin() -> str:
    found = Path(sys.executable).parent / "lenslink"
    return str(found) if found.exists() else (shutil.which("lenslink") or "lenslink")


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    """Wall seconds of a whole process, and its stdout (raises on a non-zero exit)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds, proc.stdout.strip()


def show(cmd: list[str]) -> str:
    """A command as typed from the project root."""
    out = []
    for a in map(str, cmd):
        if a == sys.executable:
            a = "python"
        elif a.startswith(str(ROOT) + "/"):
            a = a[len(str(ROOT)) + 1:]
        out.append(a if a and " " not in a else repr(a))
    return " ".join(out)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_text()}] {msg}", file=sys.stderr, flush=True)


def emit(name: str, results: dict, json_path: str | None) -> None:
    """Print `results` as `key: value` lines and save them as JSON when asked."""
    results = {"benchmark": name, "machine": machine(), "command": show([sys.executable, *sys.argv]),
               **results}
    print(f"== {name} ==")
    _print(results, "")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1), encoding="utf-8")


def _print(value, indent: str) -> None:
    for k, v in value.items():
        if isinstance(v, dict):
            print(f"{indent}{k}:")
            _print(v, indent + "  ")
        else:
            print(f"{indent}{k}: {v}")


class StageClock:
    """A lenslink progress callback that records when each stage (read, embed) ended."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.total: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.first.setdefault(stage, now)
        self.last[stage] = now
        self.total[stage] = total


class Probe:
    """Accumulate the time spent in chosen functions by wrapping them in place
    (`probe.wrap(module_or_class, "name", "label")`); `restore()` undoes it."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner, attr: str, label: str) -> None:
        original = inspect.getattr_static(owner, attr) if isinstance(owner, type) \
            else getattr(owner, attr)
        func = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
                self.calls[label] = self.calls.get(label, 0) + 1

        if isinstance(original, staticmethod):
            timed = staticmethod(timed)
        elif isinstance(original, classmethod):
            timed = classmethod(timed)
        own = not isinstance(owner, type) or attr in owner.__dict__
        self._undo.append((owner, attr, original if own else None))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            if original is None:
                delattr(owner, attr)  # it was inherited: uncover the base class's again
            else:
                setattr(owner, attr, original)
        self._undo.clear()

    def report(self) -> dict:
        return {k: f"{v:.3f} s ({self.calls[k]} calls)" for k, v in self.seconds.items()}

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run a whole process: its wall seconds, its own peak RSS (MB, from wait4), exit
    code and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
                "returncode": proc.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace")}


def rss_mb(pid: int) -> float:
    """Current resident memory of a running process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
