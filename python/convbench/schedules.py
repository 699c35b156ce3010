"""Hand-written s_tir schedules for NHWC x HWIO conv (AVX-512, fp32).

Register tile: `rows` output pixels (along OW, or OH when OW is tiny) x `ocv` vectors of 16 output
channels, accumulated in a local buffer across the whole (kh, kw, ic) reduction and written back
once; the channel axis is vectorised, the tile rows and input-channel steps unrolled, and the outer
(n, oh) axes run in parallel on TVM's pool. Output channels that are not a multiple of the tile
(1318 for the logits conv) are split into a main part and a tail, each scheduled on its own.
"""

from __future__ import annotations

from typing import Any

from tvm import s_tir

VEC = 16  # fp32 lanes of an AVX-512 register
SCHEDULE_VERSION = "direct-nhwc-v1"


def describe(workload: Any) -> str:
    """The schedule's name, its version and the tile picked for `workload` (part of the cache key)."""
    from .kernels import conv_module

    cfg = pick_config(conv_module(workload))
    return f"{SCHEDULE_VERSION}:" + ",".join(f"{k}={cfg[k]}" for k in sorted(cfg))


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _conv_shapes(mod):
    """(N, OH, OW, Cout), (KH, KW, Cin, Cout) read from the 'conv' block."""
    sch = s_tir.Schedule(mod)
    blk = sch.get(sch.get_sblock("conv"))
    out = [int(x) for x in blk.writes[0].source.shape]
    wgt = [int(x) for x in blk.reads[-1].source.shape]
    return out, wgt


def _best_rows(rows_total, ocv, max_acc):
    for r in sorted(_divisors(rows_total), reverse=True):
        if r * ocv <= max_acc:
            return r
    return 1


def pick_config(mod):
    """Register tile = rows (along OW, or OH when OW is tiny) x (ocv * 16) output channels."""
    (N, OH, OW, Cout), (KH, KW, Cin, _) = _conv_shapes(mod)
    row_axis = "ow" if OW >= 4 else "oh"
    rows_total = OW if row_axis == "ow" else OH
    nvec = max(1, Cout // VEC)
    best = None
    for ocv in (4, 3, 2, 1):
        if nvec % ocv:
            continue
        r = _best_rows(rows_total, ocv, 28)
        acc = r * ocv
        key = (acc >= 12, ocv * (r >= 4), acc)
        if best is None or key > best[0]:
            best = (key, r, ocv)
    _, rows, ocv = best
    icu = 4 if Cin % 4 == 0 else 1
    return dict(row_axis=row_axis, rows=rows, ocv=ocv, icu=icu, tail_rows=None)


def schedule_conv(mod, workload=None, num_threads_hint=2, config=None):
    """Apply the hand-written schedule. `config` may override keys of pick_config(mod)."""
    cfg = dict(pick_config(mod))
    if config:
        cfg.update(config)
    (N, OH, OW, Cout), (KH, KW, Cin, _) = _conv_shapes(mod)
    sch = s_tir.Schedule(mod)
    conv = sch.get_sblock("conv")
    pad = sch.get_sblock("pad") if _has_block(sch, "pad") else None

    ocb = cfg["ocv"] * VEC
    main_oc = (Cout // ocb) * ocb
    tail_oc = Cout - main_oc
    if tail_oc == 0:
        _schedule_block(sch, conv, cfg, OH, OW, oc_first=False, oc_extent=Cout)
    else:
        # Cout not a multiple of the channel tile: split the output-channel range into a
        # main block (multiple of ocb) and a tail block, each scheduled on its own.
        n, oh, ow, oc, kh, kw, ic = sch.get_loops(conv)
        sch.reorder(oc, n, oh, ow)
        sch.loop_partition(oc, [main_oc, None])
        if main_oc:
            _schedule_block(sch, sch.get_sblock("conv_o0"), cfg, OH, OW, oc_first=True,
                            oc_extent=main_oc)
        tcfg = dict(cfg)
        tcfg["ocv"] = 1
        if cfg["row_axis"] == "oh":
            tcfg["rows"] = cfg.get("tail_rows") or _best_rows(OH, 1, 24)
        _schedule_block(sch, sch.get_sblock("conv_o1"), tcfg, OH, OW, oc_first=True,
                        oc_extent=tail_oc, tail=True)

    if pad is not None:
        n, h, w, c = sch.get_loops(pad)
        sch.parallel(sch.fuse(n, h))
        if Cin % VEC == 0:
            _, ci = sch.split(c, [None, VEC])
            sch.vectorize(ci)
        else:
            sch.vectorize(c)
    return sch.mod


def _has_block(sch, name):
    try:
        sch.get_sblock(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def _schedule_block(sch, conv, cfg, OH, OW, oc_first, oc_extent, tail=False):
    rows, ocv, icu = cfg["rows"], cfg["ocv"], cfg["icu"]
    loops = sch.get_loops(conv)[-7:]
    if oc_first:
        oc, n, oh, ow, kh, kw, ic = loops
    else:
        n, oh, ow, oc, kh, kw, ic = loops
    if tail:
        oco, ocv_l, oci = None, None, oc
    else:
        oco, ocv_l, oci = sch.split(oc, [None, ocv, VEC])
    ico, ici = sch.split(ic, [None, icu])
    if cfg["row_axis"] == "ow":
        owo, rowi = sch.split(ow, [None, rows])
        if cfg.get("order", "oc_outer") == "oc_outer" or oco is None:
            outer = [n, oh] + ([oco] if oco is not None else []) + [owo]
        else:
            outer = [n, oh, owo, oco]
        par = [n, oh]
    else:
        oho, rowi = sch.split(oh, [None, rows])
        outer = [n] + ([oco] if oco is not None else []) + [oho, ow]
        par = [n, oco] if oco is not None else [n, oho]
    inner = [rowi] + ([ocv_l] if ocv_l is not None else []) + [oci]
    sch.reorder(*outer, kh, kw, ico, ici, *inner)
    # accumulator: local buffer holding one register tile, written back after the reduction
    wb = sch.cache_write(conv, 0, "local")
    sch.reverse_compute_at(wb, outer[-1])
    # annotate before decompose_reduction (the update block is no longer a reduction block
    # afterwards, and vectorize()/parallel() would refuse it). Init loops inherit annotations.
    sch.vectorize(oci)
    if ocv_l is not None:
        sch.unroll(ocv_l)
    sch.unroll(rowi)
    if icu > 1:
        sch.unroll(ici)
    fused = sch.fuse(*par)
    sch.parallel(fused)
    sch.decompose_reduction(conv, kh)
    # write-back: vectorize channels, unroll rows
    wl = sch.get_loops(wb)
    n_outer = len(outer) - len(par) + 1
    sch.vectorize(wl[-1])
    if len(wl) - n_outer >= 2:
        sch.unroll(wl[-2])
