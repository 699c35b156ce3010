"""Faults during a run, for real: a worker killed by a signal, a worker that hangs past its
timeout, Ctrl-C in the middle of a run (once, and twice). Each costs at most the cell in
progress; the measured records stay in the JSON; the message says what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import QUICK, process_record
from convbench.build.cache import KernelCache
from convbench.cpus import plan_cpus
from convbench.measure.pool import WorkerError, Workers, run_worker
from convbench.measure.tasks import MeasureTask
from convbench.native.harness import RunConfig
from convbench.spec import ConvWorkload, load_spec


@pytest.fixture(scope="module")
def task_of(tiny_shapes, tmp_path_factory):
    w = ConvWorkload(load_spec(tiny_shapes)[0], 1)
    kernel = str(KernelCache(tmp_path_factory.mktemp("k")).conv(w).path)
    plan = plan_cpus(1)

    def make(config: RunConfig, backend: str = "tvm", path: str = "native") -> MeasureTask:
        return MeasureTask(
            workload=w,
            backend=backend,
            path=path,
            threads=1,
            cpus=list(plan.cpus),
            available_cpus=plan.available,
            config=config,
            kernel_path=kernel if backend == "tvm" else None,
        )

    return make


QUICK_CONFIG = RunConfig(warmup_s=0.001, min_sample_s=0.001, samples=3, warmup_iters=2)
# A cell that would take over an hour: what a hung worker looks like from outside.
ENDLESS = RunConfig(warmup_s=0.001, min_sample_s=1.0, samples=5000, warmup_iters=1)


def test_a_worker_killed_by_a_signal_costs_its_cell(task_of) -> None:
    with Workers(600, fork=True) as workers:
        result: dict = {}

        def run() -> None:
            try:
                workers.run(task_of(ENDLESS))
            except WorkerError as e:
                result["error"] = str(e)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 120
        while workers.current_pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers.current_pid is not None
        time.sleep(0.5)
        os.kill(workers.current_pid, signal.SIGKILL)
        t.join(60)
        assert not t.is_alive()
        assert "killed by SIGKILL" in result["error"]
        # the server lives on: the next cell is measured
        record = workers.run(task_of(QUICK_CONFIG))
        assert record["samples"] == 3


@pytest.mark.parametrize("fork", [True, False])
def test_a_hung_worker_is_stopped_at_its_timeout(task_of, fork: bool) -> None:
    with Workers(8, fork=fork) as workers:
        t0 = time.monotonic()
        with pytest.raises(WorkerError, match="timed out after 8 s"):
            workers.run(task_of(ENDLESS))
        assert time.monotonic() - t0 < 60
        assert workers.run(task_of(QUICK_CONFIG))["samples"] == 3


def test_a_forked_child_has_the_pools_and_pinning_of_a_fresh_process(task_of) -> None:
    """The same 2-thread cells through the fork server and in fresh interpreters: the same
    pool sizes, the same pinning, the same CPUs for the other threads."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    plan = plan_cpus(2)
    with Workers(300, fork=True) as workers:
        for backend, path in (("tvm", "native"), ("tf", "eager"), ("tf", "native")):
            base = task_of(QUICK_CONFIG, backend, path)
            task = MeasureTask(**{**base.__dict__, "threads": 2, "cpus": list(plan.cpus)})
            forked, fresh = workers.run(task), run_worker(task, 300)
            assert workers.forked >= 1
            for key in ("timing_thread_cpus", "pinned", "pool_threads", "other_threads_cpus"):
                assert forked.get(key) == fresh.get(key), (path, key, forked.get(key))


def _json_records(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["records"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_keeps_every_measured_record(tiny_shapes, tmp_path, presses: int) -> None:
    out = tmp_path / "r.json"
    args = [sys.executable, "-m", "convbench.cli", "--shapes", str(tiny_shapes), "--threads", "1"]
    args += [*QUICK, "--repetitions", "3", "--json", str(out), "--cache-dir", str(tmp_path / "c")]
    # a session of its own, so the test can send what a terminal sends: SIGINT to the group
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while _json_records(out) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    before = _json_records(out)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert workers, "no worker process to check"
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "interrupted" in stderr and str(out) in stderr
    assert "Traceback" not in stdout + stderr
    doc = json.loads(out.read_text())
    assert len(doc["records"]) >= before and doc["complete"] is False
    # no worker (the fork server, the child measuring) outlives the run
    deadline = time.monotonic() + 15
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.2)
    assert not alive, alive


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_fault_of_convbench_itself_keeps_the_records_and_prints_no_traceback(
    tiny_shapes, tmp_path, monkeypatch
) -> None:
    """An exception convbench does not expect, raised after some cells were measured: the run
    ends with a one-line message that names the error and where it came from, and the JSON
    keeps what was measured."""
    import io

    from convbench.cli import common
    from rich.console import Console

    out = tmp_path / "r.json"
    record = process_record([1e-4])

    def run(self):
        self.doc.records = [record]
        self.save()
        raise TypeError("unhashable type: 'list'")

    monkeypatch.setattr(common.Runner, "run", run)
    shapes = common.load_shapes(tiny_shapes)
    text = io.StringIO()
    err = Console(file=text, width=200)
    status = common.execute(
        shapes, common.RunOptions(threads=[1]), out, Console(file=io.StringIO()), err
    )
    assert status == 1
    message = text.getvalue()
    assert "internal error (TypeError: unhashable type: 'list', at test_faults.py:" in message
    assert "in run); please report it" in message and "Traceback" not in message
    assert f"{out} holds the 1 measurement(s) saved before the fault" in message
    assert len(json.loads(out.read_text())["records"]) == 1
