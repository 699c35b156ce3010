"""What every subcommand shares: argument types, the workload and timing options, the consoles,
reading the shapes file once, running with the live display, and the closing line."""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import resource
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..build.cache import usable_cache_dir
from ..build.target import TargetError
from ..host import cold_copies
from ..native.harness import RunConfig
from ..paths import parse_paths
from ..report.live import ConsoleReporter
from ..report.tables import print_report
from ..results.document import ResultsDoc, ResultsError
from ..run import Runner, RunOptions, RunPlan
from ..spec.budget import fmt_bytes, refusals
from ..spec.conv import ConvWorkload
from ..spec.errors import SpecError, quote
from ..spec.shapes import ShapesFile, load_shapes

__all__ = [
    "MAX_BATCH",
    "MAX_SAMPLES",
    "MAX_THREADS",
    "add_timing_args",
    "add_workload_args",
    "bounded_float",
    "bounded_int",
    "check_memory",
    "check_timing",
    "consoles",
    "default_json_path",
    "execute",
    "failures",
    "int_list",
    "non_negative_int",
    "load_shapes_or_report",
    "memory_available",
    "memory_size",
    "paths_arg",
    "positive_float",
    "positive_int",
    "read_results",
    "resolve_cache_dir",
    "run_options",
    "write_atomic",
]

# Command-line bounds: above these a value is a typo, not a plan.
MAX_THREADS = 4096
MAX_BATCH = 2**31 - 1  # beyond int32 TVM cannot index the batch; the memory bound comes first
MAX_SAMPLES = 5000  # samples per cell (the oneDNN profile of tf/kernel holds one line per call)
MAX_SECONDS = 7 * 24 * 3600.0  # any duration option
MAX_SAMPLE_TIME = 60.0  # --min-sample-time
MAX_TRIALS = 100_000


def int_list(text: str, maximum: int = MAX_BATCH, what: str = "value") -> list[int]:
    expected = f"expected comma-separated positive integers, got {quote(text)}"
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(expected) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(expected)
    big = [v for v in values if v > maximum]
    if big:
        raise argparse.ArgumentTypeError(f"{quote(big[0])}: at most {maximum:,} per {what}")
    return sorted(dict.fromkeys(values))


def thread_list(text: str) -> list[int]:
    return int_list(text, MAX_THREADS, "thread count")


def batch_list(text: str) -> list[int]:
    return int_list(text, MAX_BATCH, "batch size")


def bounded_float(
    low: float, high: float, what: str = "number", inclusive_low: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in (low, high] ([low, high] with inclusive_low)."""
    above = f"at least {low:g}" if inclusive_low else f"above {low:g}"

    def parse(text: str) -> float:
        expected = f"expected a {what} {above} and at most {high:g}, got {quote(text)}"
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(expected) from None
        if not math.isfinite(v) or v > high or v < low or (v == low and not inclusive_low):
            raise argparse.ArgumentTypeError(expected)
        return v

    return parse


def bounded_int(low: int, high: int, what: str = "integer") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or not low <= v <= high:
            raise argparse.ArgumentTypeError(
                f"expected a {what} from {low:,} to {high:,}, got {quote(text)}"
            )
        return v

    return parse


def positive_float(text: str) -> float:
    """A finite number above 0 (at most a week's worth of seconds)."""
    return bounded_float(0.0, MAX_SECONDS, "number")(text)


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {quote(text)}")
    return v


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def cache_modes(text: str) -> tuple[str, ...]:
    modes = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    if not modes or set(modes) - {"warm", "cold"}:
        raise argparse.ArgumentTypeError(f"expected warm, cold or warm,cold, got {text!r}")
    return modes


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_size(text: str) -> int:
    """'8G', '512M', '1.5G', '2TiB', '1000000' (bytes) -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 8G, 512M or a number of bytes, got {quote(text)}"
        )
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not 1 << 20 <= value <= 1 << 50:
        raise argparse.ArgumentTypeError(f"expected a size from 1M to 1024T, got {quote(text)}")
    return int(value)


def _cgroup_room() -> int | None:
    """Bytes this process's cgroup may still allocate (v2, then v1), None when unlimited."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return max(int(limit) - usage, 0)
    return None


def memory_available() -> int:
    """Bytes a worker may allocate: the system's available memory, or less where the address
    space limit (RLIMIT_AS) or the cgroup's limit says so."""
    import psutil

    room = [psutil.virtual_memory().available]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room.append(max(soft - psutil.Process().memory_info().vms, 0))
    cgroup = _cgroup_room()
    if cgroup is not None:
        room.append(cgroup)
    return min(room)


def check_memory(
    shapes: ShapesFile, options: RunOptions, max_memory: int | None, err: Console
) -> bool:
    """Every workload of the run within what TVM can index and within the memory limit
    (`max_memory`, or half of the memory available); False (messages printed) when not. Pure
    arithmetic on the parsed file: nothing is built or allocated."""
    if max_memory is not None:
        limit, text = max_memory, "--max-memory"
    else:
        available = memory_available()
        limit = available // 2
        text = f"half of the {fmt_bytes(available)} available; --max-memory raises it"
    problems: list[str] = []
    for w in RunPlan(shapes.convs, options).workloads:
        copies = 1
        if "cold" in options.caches and isinstance(w, ConvWorkload):
            # a cold cell rotates through this many copies of the call's arrays
            shapes_of = (w.input_shape, w.weight_shape, w.output_shape)
            copies = cold_copies(4 * sum(math.prod(s) for s in shapes_of))
        problems += refusals(shapes, [w], limit, text, copies=copies)
    if not problems:
        return True
    shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
    err.print(
        "[bold red]convbench: refused before building anything[/]\n" + "\n".join(shown),
        highlight=False,
    )
    return False


def check_timing(args: argparse.Namespace, err: Console) -> bool:
    """Timing options that cannot work together: a cell that cannot finish its samples before
    --cell-timeout. False (message printed) when refused."""
    needed = args.warmup + args.samples * args.min_sample_time
    if needed >= args.cell_timeout:
        err.print(
            f"[bold red]convbench:[/] --cell-timeout {args.cell_timeout:g} s is shorter than "
            f"one cell's sampling needs (--warmup + --samples x --min-sample-time = "
            f"{needed:g} s): every cell would time out",
            highlight=False,
        )
        return False
    return True


def resolve_cache_dir(path: Path | None, err: Console) -> Path:
    """The kernel cache to use: `path` (or the default) when it is a writable directory, else a
    temporary one, with a warning saying why."""
    root, problem = usable_cache_dir(path)
    if problem is not None:
        err.print(f"[yellow]convbench: warning:[/] {problem}", highlight=False)
    return root


def paths_arg(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_paths(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shapes", required=True, type=Path, help="workload file (shapes.yaml)")
    p.add_argument("--threads", type=thread_list, default=[1], help="thread counts, e.g. 1,4,8 (1)")
    p.add_argument("--batch", type=batch_list, default=[1], help="batch sizes, e.g. 1,100 (1)")
    p.add_argument(
        "--max-memory",
        type=memory_size,
        default=None,
        metavar="SIZE",
        help="refuse a workload whose estimated memory is above this, e.g. 8G (default: half "
        "of the memory available)",
    )


def add_timing_args(p: argparse.ArgumentParser) -> None:
    """How cells are sampled and run: every command that measures takes these."""
    p.add_argument(
        "--samples",
        type=bounded_int(1, MAX_SAMPLES, "positive integer"),
        default=10,
        help=f"samples per cell (10, at most {MAX_SAMPLES})",
    )
    p.add_argument(
        "--min-sample-time",
        type=bounded_float(0.0, MAX_SAMPLE_TIME, "number"),
        default=0.01,
        metavar="S",
        help="minimum seconds per sample; iterations are calibrated to reach it (0.01)",
    )
    p.add_argument(
        "--warmup",
        type=positive_float,
        default=0.05,
        metavar="S",
        help="warm-up seconds before calibration (0.05)",
    )
    p.add_argument(
        "--warmup-iters",
        type=bounded_int(0, 1_000_000, "warmup-iters"),
        default=10,
        metavar="N",
        help="... and at least this many warm-up calls, however long a call takes (10)",
    )
    p.add_argument(
        "--repetitions",
        type=bounded_int(1, 1000, "repetitions"),
        default=3,
        metavar="N",
        help="measure each cell in N fresh processes, interleaved with the other cells; "
        "statistics pool them and compare tests their medians (3)",
    )
    p.add_argument(
        "--max-repetitions",
        type=bounded_int(1, 1000, "max-repetitions"),
        default=None,
        metavar="M",
        help="then measure the cells still unstable again, a pass at a time, until they are "
        "stable or have M processes (6; at most --repetitions: never)",
    )
    p.add_argument(
        "--cache",
        type=cache_modes,
        default=("warm",),
        metavar="MODES",
        help="warm (the same arrays every call), cold (each call on copies of the arrays that "
        "together exceed the last-level cache: tvm/native, tf/kernel, tf/eager of single "
        "convs), or warm,cold (warm)",
    )
    p.add_argument(
        "--no-fork-server",
        dest="fork",
        action="store_false",
        help="a fresh interpreter for every cell instead of a child of a fork server that "
        "imported TF and TVM once (slower; the same pools and pinning)",
    )
    p.add_argument(
        "--seed",
        type=bounded_int(0, 2**32 - 1, "seed"),
        default=0,
        help="seed of the random inputs (0)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="kernel cache (default: $CONVBENCH_CACHE_DIR or ~/.cache/convbench)",
    )
    p.add_argument(
        "--cell-timeout",
        type=positive_float,
        default=600.0,
        metavar="S",
        help="give up on one cell after this many seconds (600)",
    )


def consoles() -> tuple[Console, Console]:
    """stdout and stderr consoles. soft_wrap keeps a long row or message on one line; output
    that is not a terminal (a log file) gets tables at full width."""
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=250)
    return console, Console(stderr=True, soft_wrap=True)


def load_shapes_or_report(path: Path, err: Console) -> ShapesFile | None:
    """The shapes file, read once; None (message printed) when it is refused."""
    try:
        return load_shapes(path)
    except SpecError as e:
        err.print(f"[bold red]convbench: invalid shapes file[/]\n{e}", highlight=False)
        return None


def read_results(path: Path, err: Console) -> ResultsDoc | None:
    try:
        return ResultsDoc.load(path)
    except ResultsError as e:
        err.print(
            f"convbench: {path} is not a convbench results file ({e})",
            highlight=False,
            markup=False,
        )
        return None


def default_json_path(prefix: str) -> Path:
    """convbench-results/<prefix>-<time>-<pid>.json: two runs started in the same second in
    one folder write two files."""
    return Path("convbench-results") / time.strftime(f"{prefix}-%Y%m%d-%H%M%S-{os.getpid()}.json")


def run_options(args: argparse.Namespace, **extra: Any) -> RunOptions:
    """RunOptions from the arguments every run command shares, plus `extra` fields."""
    return RunOptions(
        threads=args.threads,
        batches=args.batch,
        config=RunConfig(
            warmup_s=args.warmup,
            min_sample_s=args.min_sample_time,
            samples=args.samples,
            warmup_iters=args.warmup_iters,
        ),
        seed=args.seed,
        repetitions=args.repetitions,
        max_repetitions=max(args.repetitions, args.max_repetitions or RunOptions.max_repetitions),
        fork=args.fork,
        caches=args.cache,
        cache_dir=args.cache_dir,
        cell_timeout_s=args.cell_timeout,
        **extra,
    )


def execute(
    shapes: ShapesFile, options: RunOptions, json_path: Path, console: Console, err: Console
) -> ResultsDoc | int:
    """Runs with the live display and prints the report: the results document, or the exit
    status when the run could not finish (interrupted: what was measured is in the JSON)."""
    reporter = ConsoleReporter(console)
    runner = Runner(shapes.convs, options, json_path=json_path, reporter=reporter)
    try:
        doc = runner.run()
    except KeyboardInterrupt:
        reporter.stop()
        err.print(f"interrupted: the results measured so far are in {json_path}", markup=False)
        return 130
    except TargetError as e:
        reporter.stop()
        err.print(f"[bold red]convbench:[/] {escape(str(e))}", highlight=False)
        return 2
    except OSError as e:
        reporter.stop()
        err.print(f"[bold red]convbench: stopped:[/] {escape(_os_error(e))}", highlight=False)
        err.print(_saved_so_far(json_path, runner.doc), highlight=False, markup=False)
        return 1
    except Exception as e:  # a fault of convbench itself: what was measured is kept
        reporter.stop()
        where = traceback.extract_tb(e.__traceback__)[-1]
        err.print(
            f"[bold red]convbench: internal error[/] ({type(e).__name__}: {escape(str(e))}, at "
            f"{Path(where.filename).name}:{where.lineno} in {where.name}); please report it",
            highlight=False,
        )
        err.print(_saved_so_far(json_path, runner.doc), highlight=False, markup=False)
        return 1
    reporter.stop()
    print_report(doc, console, details=False)
    return doc


def _os_error(e: OSError) -> str:
    what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full ({what})"
    return what


def _saved_so_far(json_path: Path, doc: ResultsDoc) -> str:
    """What the results file on disk holds now (the last save that succeeded), and where the
    rest went when it could be written elsewhere (the temporary directory, often another
    file system)."""
    measured = len(doc.records)
    try:
        saved = len(ResultsDoc.load(json_path).records)
    except ResultsError:
        saved = None
    text = (
        f"{json_path} holds the {saved} measurement(s) saved before the fault"
        if saved is not None
        else f"nothing could be saved to {json_path}"
    )
    if measured > (saved or 0):
        rescue = Path(tempfile.gettempdir()) / f"convbench-rescued-{json_path.name}"
        try:
            doc.save(rescue)
        except OSError:
            return text + f"; {measured - (saved or 0)} more measured could not be written"
        return text + f"; all {measured} measured are in {rescue}"
    return text


def failures(doc: ResultsDoc) -> tuple[int, int]:
    """(errors, failed checks) of a finished run."""
    return len(doc.errors), sum(1 for c in doc.checks if not c["ok"])


def write_atomic(path: Path, data: str | bytes, err: Console, who: str) -> bool:
    """`data` into `path` through a temporary file and a rename: the path holds the whole file
    or what it held before. False (message printed) when it cannot be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        err.print(f"[bold red]{who}:[/] cannot write {path}: {e}", highlight=False)
        return False
    return True


def rpc_address(text: str) -> tuple[str, int]:
    from ..measure.rpc import parse_address

    try:
        return parse_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_rpc_args(p: argparse.ArgumentParser) -> Any:
    """--rpc HOST:PORT and --rpc-key KEY, in a group of their own (returned)."""
    r = p.add_argument_group(
        "remote devices",
        "TVM's RPC tracker: TVM's measurements go to the servers registered under a key (start "
        "them with `convbench rpc server`; RPC runs what the client uploads: trusted networks "
        "only)",
    )
    r.add_argument("--rpc", metavar="HOST:PORT", type=rpc_address, help="the RPC tracker")
    r.add_argument("--rpc-key", metavar="KEY", help="the key the servers registered under")
    return r


def connect_remote(args: argparse.Namespace, err: Console, prog: str) -> Any:
    """The tracker's devices under --rpc-key (measure.rpc.RemoteDevices), None without --rpc,
    or False with the reason printed (no key, no tracker)."""
    if args.rpc is None:
        if args.rpc_key is not None:
            err.print(f"[bold red]{prog}:[/] --rpc-key needs --rpc HOST:PORT (the tracker)")
            return False
        return None
    if not args.rpc_key:
        err.print(f"[bold red]{prog}:[/] --rpc needs --rpc-key KEY (the servers' key)")
        return False
    from ..measure.rpc import RemoteDevices, RpcError

    host, port = args.rpc
    try:
        remote = RemoteDevices(host, port, args.rpc_key)
        n = remote.servers()
    except RpcError as e:
        err.print(f"[bold red]{prog}:[/] {e}", highlight=False)
        return False
    if n == 0:
        err.print(
            f"{prog}: the tracker at {host}:{port} has no server under key "
            f"{args.rpc_key!r} yet; waiting up to 30 s for one",
            highlight=False,
        )
    return remote
