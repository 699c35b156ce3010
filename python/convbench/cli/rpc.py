"""`convbench rpc tracker|server`: TVM's own RPC tracker (`python -m tvm.exec.rpc_tracker`) and
server (`tvm.rpc.Server` with convbench's measuring functions, measure/rpc_server.py), bound to
127.0.0.1 unless --host says otherwise.

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
    s.add_argument(
        "--cpus",
        type=cpu_list,
        metavar="LIST",
        help="the CPUs this server measures on, e.g. 0-3 or 4,5 (default: all it may use); "
        "servers on one machine should each have their own",
    )
    args = p.parse_args(argv)
    if args.what == "tracker":
        cmd = ["-m", "tvm.exec.rpc_tracker", "--host", args.host, "--port", str(args.port)]
        cmd += ["--port-end", str(args.port + 10)]
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, *cmd])
    from ..cpus import allowed_cpus
    from ..measure.rpc import parse_address
    from ..measure.rpc_server import serve

    try:
        tracker = parse_address(args.tracker)
    except ValueError as e:
        print(f"convbench rpc server: --tracker: {e}", file=sys.stderr)
        return 2
    if args.cpus is not None:
        outside = sorted(set(args.cpus) - set(allowed_cpus()))
        if outside:
            print(
                f"convbench rpc server: --cpus: CPU {outside[0]} is not one this process may "
                f"use ({','.join(map(str, allowed_cpus()))})",
                file=sys.stderr,
            )
            return 2
    try:
        return serve(args.host, args.port, args.port + 100, tracker, args.key, args.cpus)
    except KeyboardInterrupt:
        return 0


def cpu_list(text: str) -> list[int]:
    """'0-3,6' -> [0, 1, 2, 3, 6]; argparse's error with the reason."""
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a CPU number or range") from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"{part!r} is not a CPU range (low-high)")
        out.update(range(a, b + 1))
    return sorted(out)
