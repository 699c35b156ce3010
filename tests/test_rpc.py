"""TVM's RPC stack, for real: a tracker and two servers on loopback (`convbench rpc`, each its
own process), a run whose TVM cells go to them, a server killed mid-run, and every process
cleaned up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUICK

KEY = "convbench-test"
CPUS = sorted(os.sched_getaffinity(0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "convbench.cli", "rpc", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the server's forked children go with it
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def _servers(port: int) -> int:
    from convbench.measure.rpc import RemoteDevices, RpcError

    try:
        return RemoteDevices("127.0.0.1", port, KEY).servers()
    except RpcError:
        return -1


@pytest.fixture()
def cluster(tmp_path):
    """A tracker and two servers under KEY; yields (port, servers); kills them all after."""
    port = _free_port()
    procs = [_start("tracker", "--port", str(port), log=tmp_path / "tracker.log")]
    try:
        t_end = time.monotonic() + 60
        while _servers(port) < 0:
            assert time.monotonic() < t_end, (tmp_path / "tracker.log").read_text()
            time.sleep(0.3)
        servers = []
        for i in range(2):
            servers.append(
                _start(
                    "server",
                    "--tracker",
                    f"127.0.0.1:{port}",
                    "--key",
                    KEY,
                    "--port",
                    str(_free_port()),
                    "--cpus",  # each its own core, as servers on one machine should have
                    str(CPUS[i % len(CPUS)]),
                    log=tmp_path / f"server{i}.log",
                )
            )
        procs += servers
        while _servers(port) < 2:
            assert time.monotonic() < t_end, (tmp_path / "server0.log").read_text()
            time.sleep(0.3)
        yield port, servers
    finally:
        for p in procs:
            _stop(p)


def _devices(doc: dict) -> set[str]:
    return {d for r in doc["records"] for d in (r.get("device") or "").split(", ") if d}


def test_a_run_through_the_tracker_uses_both_servers(convbench, tiny_shapes, cluster, tmp_path):
    port, _ = cluster
    common = ("--shapes", str(tiny_shapes), "--threads", "1", *QUICK, "--repetitions", "3")
    common += ("--paths", "tvm/native,tvm/evaluator,tf/kernel")
    common += ("--cache-dir", str(tmp_path / "cache"))
    proc = convbench(
        *common,
        "--rpc",
        f"127.0.0.1:{port}",
        "--rpc-key",
        KEY,
        "--json",
        str(tmp_path / "remote.json"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    remote = json.loads((tmp_path / "remote.json").read_text())
    assert remote["remote"]["key"] == KEY and remote["remote"]["servers"] == 2
    assert remote["remote"]["convbench"] and remote["remote"]["peak"]["1"] > 0
    from convbench.version import code_digest

    assert remote["remote"]["convbench_code"] == code_digest()  # the servers run this code
    assert not any("is not this one" in w for w in remote["warnings"])
    assert 0 < remote["time"]["remote_cells_wall_s"] < remote["time"]["wall_s"]
    tvm = [r for r in remote["records"] if r["backend"] == "tvm"]
    assert tvm and all(r["device"] and r["device"].startswith(KEY) for r in tvm)
    assert all(r["repetitions"] == 3 for r in tvm)
    assert len(_devices(remote)) == 2  # both servers measured
    local_tf = [r for r in remote["records"] if r["backend"] == "tf"]
    assert local_tf and all(r.get("device") is None for r in local_tf)  # TF ran here
    proc = convbench(*common, "--json", str(tmp_path / "local.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    local = json.loads((tmp_path / "local.json").read_text())
    here = {
        (r["workload"], r["path"]): r["median_s"] for r in local["records"] if r["backend"] == "tvm"
    }
    for r in tvm:  # the same kernel timed the same way: the same time, within noise
        assert 0.67 < r["median_s"] / here[r["workload"], r["path"]] < 1.5, (r, here)


def test_a_server_killed_mid_run_costs_at_most_its_cell(convbench, tiny_shapes, cluster, tmp_path):
    port, servers = cluster
    out = tmp_path / "run.json"
    args = [sys.executable, "-m", "convbench.cli", "--shapes", str(tiny_shapes), "--threads", "1"]
    args += [*QUICK, "--repetitions", "6", "--samples", "20", "--paths", "tvm/evaluator"]
    args += ["--no-tf", "--rpc", f"127.0.0.1:{port}", "--rpc-key", KEY, "--json", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    run = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        t_end = time.monotonic() + 300
        while True:  # wait for the first remote record, then kill a server
            assert run.poll() is None, run.stdout.read().decode()[-3000:]
            assert time.monotonic() < t_end
            try:
                if json.loads(out.read_text())["records"]:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        _stop(servers[0])
        text = run.communicate(timeout=600)[0].decode()
    finally:
        if run.poll() is None:
            run.kill()
    doc = json.loads(out.read_text())
    cells = 2 * 6  # two convs, six repetitions
    measured = sum(r["repetitions"] for r in doc["records"])
    failed = [e for e in doc["errors"] if e["stage"] == "measure"]
    assert measured + len(failed) == cells, text[-3000:]
    assert len(failed) <= 1, failed
    assert "Traceback" not in text


def test_a_tracker_that_cannot_be_reached_is_a_clear_error(convbench, tiny_shapes, tmp_path):
    port = _free_port()  # nothing listens there
    proc = convbench(
        "--shapes",
        str(tiny_shapes),
        "--rpc",
        f"127.0.0.1:{port}",
        "--rpc-key",
        KEY,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "cannot reach the RPC tracker at 127.0.0.1" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    proc = convbench("--shapes", str(tiny_shapes), "--rpc", "nohost", cwd=tmp_path)
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr


def test_tune_measures_candidates_and_the_duel_on_the_servers(convbench, cluster, tmp_path):
    port, _ = cluster
    shapes = tmp_path / "one.yaml"
    shapes.write_text(
        "convs: [{name: tune_me, input: [1, 6, 8, 16], kernel: [3, 3], out_channels: 16, "
        "count: 1}]\n"
    )
    db = tmp_path / "db"
    proc = convbench(
        "tune",
        "--shapes",
        str(shapes),
        "--threads",
        "1",
        "--trials",
        "4",
        "--db",
        str(db),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--rpc",
        f"127.0.0.1:{port}",
        "--rpc-key",
        KEY,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "measuring on 2 server(s)" in proc.stdout
    (summary_path,) = db.rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["device"] == KEY and summary["records"] >= 1
    assert summary["default_run_s"] > 0 and summary["duel"]["use"] == summary["use"]
    # the candidates ran in sessions of the servers (MetaSchedule's RPCRunner loads each
    # candidate into a session: the server logs it), spread over both servers
    loads = [(tmp_path / f"server{i}.log").read_text().count("load_module") for i in range(2)]
    assert sum(loads) >= summary["records"], loads


def test_a_plain_tvm_server_runs_the_evaluator_only(convbench, tiny_shapes, cluster, tmp_path):
    """A server without convbench (TVM's own `python -m tvm.exec.rpc_server`): TVM's evaluator
    of single convs runs there (a Winograd kernel's weights transformed there), the other TVM
    cells are left out with a warning."""
    port, _ = cluster
    first = _free_port()
    plain = subprocess.Popen(
        [sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1"]
        + ["--port", str(first), "--port-end", str(first + 100)]
        + ["--tracker", f"127.0.0.1:{port}", "--key", "plain", "--custom-addr", "127.0.0.1"],
        stdout=(tmp_path / "plain.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out = tmp_path / "plain.json"
        proc = convbench(
            "--shapes",
            str(tiny_shapes),
            "--threads",
            "1",
            *QUICK,
            "--paths",
            "tvm/native,tvm/evaluator",
            "--algos",
            "winograd",  # tiny_same's kernel takes transformed weights
            "--rpc",
            f"127.0.0.1:{port}",
            "--rpc-key",
            "plain",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        doc = json.loads(out.read_text())
        assert doc["remote"]["convbench"] is None
        got = {(r["workload"], r["path"]): r for r in doc["records"]}
        assert set(got) == {("tiny_same", "evaluator"), ("tiny_logits", "evaluator")}
        assert got["tiny_same", "evaluator"]["algorithm"].startswith("winograd-")
        assert all(r["device"].startswith("plain:") for r in got.values())
        assert any("plain TVM servers" in w for w in doc["warnings"])
    finally:
        _stop(plain)
