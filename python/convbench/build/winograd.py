"""Winograd F(m x m, 3 x 3) convolution, NHWC x HWIO float32, for 3x3 convs of stride 1,
dilation 1 and one group (any padding), as one library of two functions:

- `weight_transform(W[3, 3, C, K], U[a, a, Kp/KB, C, KB])`, run once when the kernel is loaded
  (as oneDNN reorders weights when a primitive is created): U = G g Gᵀ per (c, k), a = m + 2,
  K padded to a multiple of KB with zero channels;
- `main(data[N, H, W, C], U, out[N, OH, OW, K])`, per call: the input transform V = Bᵀ d B of
  every a x a input tile (stride m; padding and partial tiles read as zeros), a batched GEMM over
  the a*a transform points ((tiles x C) @ (C x Kp)), and the output transform Aᵀ M A written
  straight into NHWC, cropping partial tiles.

Schedules: the input transform runs in parallel over tiles, both of its passes per (tile, 16
channels) in registers; the GEMM in parallel over (point, block of KB channels) with a register
tile of ROWS tiles x KB channels (16 zmm accumulators, broadcast FMAs); the output transform in
parallel over (image, tile row). The a*a planes of V and M are shifted 64 bytes apart
(storage_align): 4 KiB apart, every transform access fell in one L1 set.

The transform matrices are TVM's own (topi's Cook-Toom construction, its interpolation points):
F(2, 3) multiplies 2.25x less than a direct conv, F(4, 3) 4x less, at a larger rounding error
(numerics.WINOGRAD_RTOL says how much is accepted, and why).
"""

from __future__ import annotations

import math
from typing import Any

from ..spec.conv import ConvWorkload
from .compute import VEC_LANES

# TVM is imported inside the functions that build: a worker that only needs u_shape (to load a
# kernel through the harness) does not pay for importing TVM's compiler.

__all__ = [
    "ALGORITHMS",
    "KB",
    "ROWS",
    "TILES",
    "WINOGRAD_VERSION",
    "conv_primfunc",
    "layer_problem",
    "problem_key",
    "tile_of",
    "transform_weights",
    "u_shape",
    "winograd_applicable",
    "winograd_module",
    "winograd_tag",
]

WINOGRAD_VERSION = "winograd-nhwc-v1"
TILES = (2, 4)  # output tile sizes m built and compared: F(2x2, 3x3) and F(4x4, 3x3)
ALGORITHMS = ("direct", *(f"winograd-{m}" for m in TILES))  # a 3x3 conv's candidates
ROWS = 8  # GEMM register tile: ROWS tiles x KB output channels
KB = 32  # output channels per GEMM block (two zmm vectors)


def tile_of(algorithm: str) -> int | None:
    """The tile size m of an algorithm name ("winograd-<m>"); None for "direct"; ValueError for
    anything else."""
    if algorithm == "direct":
        return None
    kind, _, m = algorithm.partition("-")
    if kind != "winograd" or not m.isdigit():
        raise ValueError(f"unknown conv algorithm {algorithm!r}")
    return int(m)


def winograd_applicable(w: ConvWorkload) -> str | None:
    """None when Winograd computes `w`, else why not."""
    s = w.spec
    if tuple(s.kernel) != (3, 3):
        return f"a {s.kernel[0]}x{s.kernel[1]} kernel (Winograd here is for 3x3)"
    if tuple(s.strides) != (1, 1):
        return "stride is not 1"
    if tuple(s.dilation) != (1, 1):
        return "dilation is not 1"
    if w.groups != 1:
        return "grouped or depthwise"
    return None


def u_shape(w: ConvWorkload, m: int) -> tuple[int, int, int, int, int]:
    """The transformed weights' shape for tile size m."""
    a = m + 2
    cin, cout = w.input_shape[3], w.output_shape[3]
    return (a, a, -(-cout // KB), cin, KB)


def winograd_tag(w: ConvWorkload, m: int) -> str:
    """The schedule's name: algorithm, tile and register tile (part of the kernel cache key)."""
    return f"{WINOGRAD_VERSION}:F({m}x{m},3x3),rows={ROWS},kb={KB}"


def _matrices(m: int) -> tuple[Any, Any, Any]:
    """A (a x m), B (a x a), G (a x 3) as float64 numpy: TVM's Cook-Toom matrices."""
    from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

    return _cook_toom_convolution(_interpolation_points(m + 1), m, 3)


def _lincomb(coefs: Any, terms: list[Any]) -> Any:
    """sum(coefs[i] * terms[i]): zero coefficients dropped, +-1 without a multiply."""
    import tvm

    out = None
    for c, t in zip(coefs, terms, strict=True):
        c = float(c)
        if c == 0.0:
            continue
        if abs(c) != 1.0:
            t, c = t * tvm.tirx.const(c, "float32"), 1.0
        if out is None:
            out = t if c > 0 else -t
        else:
            out = out + t if c > 0 else out - t
    return tvm.tirx.const(0.0, "float32") if out is None else out


def _select(idx: Any, exprs: list[Any]) -> Any:
    """exprs[idx] for a loop variable: folds to one expression once idx's loop is unrolled."""
    import tvm

    out = exprs[-1]
    for v in range(len(exprs) - 2, -1, -1):
        out = tvm.tirx.Select(idx == v, exprs[v], out)
    return out


def _weight_transform(w: ConvWorkload, m: int) -> Any:
    import tvm
    from tvm import te

    a = m + 2
    _, _, g_mat = _matrices(m)
    cin, cout = w.input_shape[3], w.output_shape[3]
    weight = te.placeholder((3, 3, cin, cout), "float32", name="W")

    def f(e: Any, n: Any, kb: Any, c: Any, kk: Any) -> Any:
        k = kb * KB + kk
        kc = te.min(k, cout - 1)  # the masked read stays in bounds
        g = [[weight[r, s, c, kc] for s in range(3)] for r in range(3)]
        rows = [[_lincomb(g_mat[n_], g[r]) for n_ in range(a)] for r in range(3)]
        val = _select(
            e,
            [
                _select(
                    n, [_lincomb(g_mat[e_], [rows[r][n_] for r in range(3)]) for n_ in range(a)]
                )
                for e_ in range(a)
            ],
        )
        return tvm.tirx.if_then_else(k < cout, val, tvm.tirx.const(0.0, "float32"))

    u = te.compute(u_shape(w, m), f, name="U")
    sch = tvm.s_tir.Schedule(te.create_prim_func([weight, u]))
    blk = sch.get_sblock("U")
    e, n, kb, c, kk = sch.get_loops(blk)
    sch.reorder(kb, c, e, n, kk)
    sch.parallel(sch.fuse(kb, c))
    sch.unroll(e)
    sch.unroll(n)
    sch.vectorize(kk)
    return sch.mod["main"].with_attr("global_symbol", "weight_transform")


def _vec(n: int) -> int:
    return next(v for v in (16, 8, 4, 2, 1) if n % v == 0)


def _conv(w: ConvWorkload, m: int) -> Any:
    import tvm
    from tvm import te

    a = m + 2
    a_mat, b_mat, _ = _matrices(m)
    n_img, h_in, w_in, cin = w.input_shape
    _, oh, ow, cout = w.output_shape
    (pt, _), (pl, _) = w.spec.pads
    th_n, tw_n = -(-oh // m), -(-ow // m)
    tiles = n_img * th_n * tw_n
    tiles_p = -(-tiles // ROWS) * ROWS
    cout_p = -(-cout // KB) * KB
    data = te.placeholder((n_img, h_in, w_in, cin), "float32", name="data")
    u = te.placeholder(u_shape(w, m), "float32", name="U")

    def tile_elem(p: Any, r: int, s: Any, c: Any) -> Any:
        img, ti, tj = p // (th_n * tw_n), p // tw_n % th_n, p % tw_n
        h, x = ti * m + r - pt, tj * m + s - pl
        ok = tvm.tirx.all(p < tiles, h >= 0, h < h_in, x >= 0, x < w_in)
        return tvm.tirx.if_then_else(ok, data[img, h, x, c], tvm.tirx.const(0.0, "float32"))

    bd = te.compute(
        (tiles_p, a, a, cin),
        lambda p, e, s, c: _select(
            e,
            [_lincomb(b_mat[:, e_], [tile_elem(p, r, s, c) for r in range(a)]) for e_ in range(a)],
        ),
        name="Bd",
    )
    v = te.compute(
        (a, a, tiles_p, cin),
        lambda e, n, p, c: _select(
            n, [_lincomb(b_mat[:, n_], [bd[p, e, s, c] for s in range(a)]) for n_ in range(a)]
        ),
        name="V",
    )
    rc = te.reduce_axis((0, cin), name="rc")
    mm = te.compute(
        (a, a, tiles_p, cout_p),
        lambda e, n, p, k: te.sum(v[e, n, p, rc] * u[e, n, k // KB, rc, k % KB], axis=rc),
        name="M",
    )
    ma = te.compute(
        (tiles_p, a, m, cout_p),
        lambda p, e, j, k: _select(
            j, [_lincomb(a_mat[:, j_], [mm[e, s, p, k] for s in range(a)]) for j_ in range(m)]
        ),
        name="MA",
    )

    def out_f(img: Any, h: Any, x: Any, k: Any) -> Any:
        p, i, j = img * th_n * tw_n + (h // m) * tw_n + x // m, h % m, x % m
        return _select(
            i, [_lincomb(a_mat[:, i_], [ma[p, e, j, k] for e in range(a)]) for i_ in range(m)]
        )

    out = te.compute((n_img, oh, ow, cout), out_f, name="out")
    return _schedule(te.create_prim_func([data, u, out]), m, _vec(cin), _vec(cout))


def _schedule(func: Any, m: int, vc: int, vk: int) -> Any:
    import tvm

    sch = tvm.s_tir.Schedule(func)
    # 1. input transform: parallel over tiles, both passes per (tile, vc channels) local
    bd, v = sch.get_sblock("Bd"), sch.get_sblock("V")
    e, n, p, c = sch.get_loops(v)
    co, ci = sch.split(c, [None, vc])
    sch.reorder(p, co, e, n, ci)
    sch.parallel(p)
    sch.compute_at(bd, co)
    sch.set_scope(bd, 0, "local")
    sch.storage_align(v, 0, axis=1, factor=1024, offset=16)
    for blk in (bd, v):
        lp = sch.get_loops(blk)
        sch.unroll(lp[-3])
        sch.unroll(lp[-2])
        sch.vectorize(lp[-1])
    # 2. batched GEMM: parallel over (point, KB-channel block); ROWS x KB accumulators
    mb = sch.get_sblock("M")
    e, n, p, k, rc = sch.get_loops(mb)
    kb, kv, kl = sch.split(k, [None, KB // 16, 16])
    pb, pr = sch.split(p, [None, ROWS])
    sch.reorder(e, n, kb, pb, rc, pr, kv, kl)
    sch.parallel(sch.fuse(e, n, kb))
    acc = sch.cache_write(mb, 0, "local")
    sch.reverse_compute_at(acc, pb)
    sch.storage_align(acc, 0, axis=1, factor=1024, offset=16)
    sch.unroll(pr)
    sch.unroll(kv)
    sch.vectorize(kl)
    # unrolled and vectorised before the init is split off: vectorize refuses it after
    init = sch.decompose_reduction(mb, rc)
    il = sch.get_loops(init)
    sch.unroll(il[-3])
    sch.unroll(il[-2])
    sch.vectorize(il[-1])
    al = sch.get_loops(acc)
    ao, ai = sch.split(al[-1], [None, 16])
    sch.unroll(ao)
    sch.vectorize(ai)
    # 3. output transform: parallel over (image, tile row); the Aᵀ M pass per tile local
    ma, ob = sch.get_sblock("MA"), sch.get_sblock("out")
    n, h, x, k = sch.get_loops(ob)
    th, i = sch.split(h, [None, m])
    tw, j = sch.split(x, [None, m])
    ko, ki = sch.split(k, [None, vk])
    sch.reorder(n, th, tw, ko, i, j, ki)
    sch.parallel(sch.fuse(n, th))
    sch.compute_at(ma, ko)
    sch.set_scope(ma, 0, "local")
    lp = sch.get_loops(ma)
    sch.unroll(lp[-3])
    sch.unroll(lp[-2])
    sch.vectorize(lp[-1])
    sch.unroll(i)
    sch.unroll(j)
    sch.vectorize(ki)
    return sch.mod["main"].with_attr("global_symbol", "main")


def problem_key(input_shape: Any, cout: int, pads: Any) -> str:
    """A conv's identity across builds (a single conv's workload, a layer of a model's Relax
    module): input NHWC, output channels and explicit pads ((top, bottom), (left, right))."""
    (pt, pb), (pl, pr) = pads
    return "x".join(str(int(d)) for d in input_shape) + f"-{int(cout)}-p{pt},{pb},{pl},{pr}"


def layer_problem(w: ConvWorkload) -> str | None:
    """The problem_key a model build's Relax module gives conv `w` (a layer of a graph, or a
    single conv of the same shape), None where Winograd does not compute it. The module computes
    a dense conv's output channels padded to the vector width (relax.pad_conv_channels), so its
    key counts them padded."""
    if winograd_applicable(w) is not None:
        return None
    cout = -(-w.output_shape[3] // VEC_LANES) * VEC_LANES
    return problem_key(w.input_shape, cout, w.spec.pads)


def transform_weights(weight: Any, m: int) -> Any:
    """`weight_transform` in numpy (float64, rounded once to float32): the U a model build
    keeps as a constant, so a model pays the transform at build time, as a loaded kernel
    pays it once at load."""
    import numpy as np

    _, _, g_mat = _matrices(m)
    g = np.asarray(g_mat, np.float64)
    _, _, cin, cout = weight.shape
    kp = -(-cout // KB) * KB
    w = np.zeros((3, 3, cin, kp))
    w[..., :cout] = weight
    u = np.einsum("er,rsck,ns->enck", g, w, g)  # (G g Gᵀ) per (c, k)
    u = u.reshape(m + 2, m + 2, cin, kp // KB, KB).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(u, dtype=np.float32)


def conv_primfunc(w: ConvWorkload, m: int) -> Any:
    """`main` of w's Winograd kernel as a scheduled PrimFunc for a model build: marked with its
    schedule (`convbench.schedule`, which build.relax keeps) and as opaque, so that Relax's
    fusion leaves it whole."""
    func = _conv(w, m).without_attr("global_symbol")
    return func.with_attr("convbench.schedule", winograd_tag(w, m)).with_attr("op_pattern", 8)


def winograd_module(w: ConvWorkload, m: int) -> Any:
    """The IRModule of `w`'s Winograd kernel with tile size m: `weight_transform` and `main`."""
    import tvm

    why = winograd_applicable(w)
    if why is not None:
        raise ValueError(f"{w.name}: no Winograd kernel: {why}")
    if m not in TILES:
        raise ValueError(f"Winograd tile size {m} is not one of {TILES}")
    return tvm.IRModule({"weight_transform": _weight_transform(w, m), "main": _conv(w, m)})


def multiplies(w: ConvWorkload, m: int) -> float:
    """The GEMM's multiply-adds per direct multiply-add (padding of tiles and channels included):
    what Winograd saves, as the schedule runs it."""
    a = m + 2
    _, oh, ow, cout = w.output_shape
    tiles = w.batch * math.ceil(oh / m) * math.ceil(ow / m)
    tiles_p = -(-tiles // ROWS) * ROWS
    gemm = a * a * tiles_p * w.input_shape[3] * (-(-cout // KB) * KB)
    return gemm / (w.batch * oh * ow * cout * w.input_shape[3] * 9)
