"""`convbench rpc tracker|server`: TVM's own RPC tracker and server (`python -m
tvm.exec.rpc_tracker|rpc_server`), bound to 127.0.0.1 unless --host says otherwise.

RPC runs whatever a client uploads on the server's machine, with the server's rights: bind to
another address only on a network you trust. `convbench --rpc HOST:PORT --rpc-key KEY` then
measures on every server registered under KEY."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["rpc_main"]


def rpc_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="convbench rpc", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tracker", help="the tracker servers register with and clients ask")
    t.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    t.add_argument("--port", type=int, default=9190, help="first of 10 ports to try (9190)")
    s = sub.add_parser("server", help="a server that measures for clients of the tracker")
    s.add_argument("--tracker", required=True, metavar="HOST:PORT", help="the tracker")
    s.add_argument("--key", required=True, help="the key clients ask the tracker for")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    s.add_argument("--port", type=int, default=9090, help="first of 100 ports to try (9090)")
    args = p.parse_args(argv)
    if args.what == "tracker":
        cmd = ["-m", "tvm.exec.rpc_tracker", "--host", args.host, "--port", str(args.port)]
        cmd += ["--port-end", str(args.port + 10)]
    else:
        from ..measure.rpc import parse_address

        try:
            parse_address(args.tracker)
        except ValueError as e:
            print(f"convbench rpc server: --tracker: {e}", file=sys.stderr)
            return 2
        cmd = ["-m", "tvm.exec.rpc_server", "--host", args.host, "--port", str(args.port)]
        cmd += ["--port-end", str(args.port + 100), "--tracker", args.tracker, "--key", args.key]
        if args.host in ("127.0.0.1", "localhost"):
            cmd += ["--custom-addr", "127.0.0.1"]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *cmd])
    return 0  # not reached
