"""Hand-written s_tir schedules for NHWC x HWIO conv (fp32, AVX-512 register tiles).

The register tile is `rows` output pixels (along OW, or along OH when OW is tiny, as in the 1x6
logits conv) by `ocv` vectors of 16 output channels. It accumulates in a local buffer over the
whole (kh, kw, ic) reduction and is written back once; the channel axis is vectorised, the tile
rows and input-channel steps unrolled, and the outer (n, oh) axes run in parallel on TVM's pool.
For wide layers (192 and 256 channels) the input channels are also blocked outside the spatial
loops so a weight chunk stays in L1. Output channels that are not a multiple of 16 (1318 for the
logits conv) are computed by separate blocks over disjoint channel ranges, so no inner loop
carries a predicate (a predicated tail compiles to scalar code: 20 GFLOP/s instead of 250).
"""

from __future__ import annotations

from typing import Any

import tvm
import tvm.script
from tvm import s_tir

from ..spec.conv import ConvWorkload
from .compute import conv_module

VEC = 16  # fp32 lanes of an AVX-512 register
SCHEDULE_VERSION = "direct-nhwc-v4"
DEPTHWISE_VERSION = "depthwise-nhwc-v1"

__all__ = [
    "DEPTHWISE_VERSION",
    "SCHEDULE_VERSION",
    "VEC",
    "has_block",
    "is_depthwise",
    "pick_config",
    "schedule_conv",
    "generic_schedule",
    "schedule_conv_in",
    "schedule_primfunc",
    "schedule_tag",
    "scheduled_conv",
]


def _module(w: ConvWorkload) -> Any:
    """The conv as an IRModule ready for the schedule: plain TE, or one block per channel range
    (a depthwise conv is always plain TE: its schedule handles a channel tail itself)."""
    _, cout = w.weight_shape[2], w.weight_shape[3]
    if cout % VEC == 0 or w.depthwise:
        return conv_module(w)
    n, h, wd, cin = w.input_shape
    kh, kw = w.spec.kernel
    (pt, pb), (pl, pr) = w.spec.pads
    (sh, sw), (dh, dw) = w.spec.strides, w.spec.dilation
    _, oh, ow, _ = w.output_shape
    return _multi_block_module(
        n,
        h,
        wd,
        cin,
        cout,
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
        pt,
        pl,
        h + pt + pb,
        wd + pl + pr,
        oh,
        ow,
        has_pad=bool(pt or pb or pl or pr),
        groups=w.spec.groups,
    )


def scheduled_conv(w: ConvWorkload) -> Any:
    """The default (untuned) kernel of `w`, scheduled and ready for tvm.compile."""
    return schedule_conv(_module(w))


def schedule_tag(w: ConvWorkload) -> str:
    """The schedule's name, version and the tile picked for `w` (part of the kernel cache key)."""
    if w.depthwise:
        _, _, ow, _ = w.output_shape
        return f"{DEPTHWISE_VERSION}:rows={_depthwise_rows(ow)}"
    cfg = pick_config(_module(w))
    return f"{SCHEDULE_VERSION}:" + ",".join(f"{k}={cfg[k]}" for k in sorted(cfg))


# TVMScript templates, formatted then parsed: their long lines are TVMScript, kept whole.
_HEAD_TEMPLATE = """
@T.prim_func(s_tir=True)
def main(data: T.Buffer(({N}, {H}, {W}, {Cin}), "float32"),
         weight: T.Buffer(({KH}, {KW}, {IPG}, {Cout}), "float32"),
         conv: T.Buffer(({N}, {OH}, {OW}, {Cout}), "float32")):
    T.func_attr({{"tirx.noalias": True, "global_symbol": "main"}})
    with T.sblock("root"):
        {pad_block}
"""

_RANGE_TEMPLATE = """
        with T.sblock("{name}_scope"):
            T.reads()
            T.writes()
            for n, h, w, o, rh, rw, rc in T.grid({N}, {OH}, {OW}, {ext}, {KH}, {KW}, {IPG}):
                with T.sblock("{name}"):
                    v_n, v_h, v_w, v_rh, v_rw, v_rc = T.axis.remap("SSSRRR", [n, h, w, rh, rw, rc])
                    v_o = T.axis.spatial(({lo}, {hi}), o + {lo})
                    with T.init():
                        conv[v_n, v_h, v_w, v_o] = T.float32(0.0)
                    conv[v_n, v_h, v_w, v_o] = conv[v_n, v_h, v_w, v_o] + {src}[v_n, v_h * {sh} + v_rh * {dh}, v_w * {sw} + v_rw * {dw}, {channel}] * weight[v_rh, v_rw, v_rc, v_o]
"""

_PAD_BLOCK = """pad = T.sblock_alloc_buffer(({N}, {HP}, {WP}, {Cin}))
        for n, h, w, c in T.grid({N}, {HP}, {WP}, {Cin}):
            with T.sblock("pad"):
                v_n, v_h, v_w, v_c = T.axis.remap("SSSS", [n, h, w, c])
                pad[v_n, v_h, v_w, v_c] = T.if_then_else({pt} <= v_h and v_h < {H} + {pt} and {pl} <= v_w and v_w < {W} + {pl}, data[v_n, v_h - {pt}, v_w - {pl}, v_c], T.float32(0.0))"""


def channel_ranges(Cout):
    """Split [0, Cout) into blocks: 'conv' = largest multiple of 64, 'conv_mid' = the rest
    that is a multiple of 16, 'conv_tail' = the last Cout % 16 channels."""
    c64 = (Cout // 64) * 64
    c16 = (Cout // 16) * 16
    rng = []
    for name, lo, hi in (("conv", 0, c64), ("conv_mid", c64, c16), ("conv_tail", c16, Cout)):
        if hi > lo:
            rng.append((name, lo, hi))
    if rng[0][0] != "conv":  # always have a block named "conv"
        rng[0] = ("conv",) + rng[0][1:]
    return rng


def _multi_block_module(
    N, H, W, Cin, Cout, KH, KW, sh, sw, dh, dw, pt, pl, HP, WP, OH, OW, has_pad, groups=1
):
    from tvm.script import tirx as T

    ipg, opg = Cin // groups, Cout // groups
    if groups == 1:
        channel = "v_rc"
    elif ipg == 1 and opg == 1:
        channel = "v_o"
    else:
        channel = f"v_o // {opg} * {ipg} + v_rc"
    kw = dict(
        IPG=ipg,
        channel=channel,
        N=N,
        H=H,
        W=W,
        Cin=Cin,
        Cout=Cout,
        KH=KH,
        KW=KW,
        OH=OH,
        OW=OW,
        sh=sh,
        sw=sw,
        dh=dh,
        dw=dw,
        HP=HP,
        WP=WP,
        pt=pt,
        pl=pl,
        src="pad" if has_pad else "data",
    )
    kw["pad_block"] = _PAD_BLOCK.format(**kw) if has_pad else ""
    src = _HEAD_TEMPLATE.format(**kw)
    for name, lo, hi in channel_ranges(Cout):
        src += _RANGE_TEMPLATE.format(name=name, lo=lo, hi=hi, ext=hi - lo, **kw)
    func = tvm.script.from_source(src, extra_vars={"T": T})
    return tvm.IRModule({"main": func})


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------
def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _conv_shapes(mod, conv="conv"):
    """(N, OH, OW, Cout), (KH, KW, Cin, Cout) read from the conv block."""
    sch = mod if isinstance(mod, s_tir.Schedule) else s_tir.Schedule(mod)
    blk = sch.get(sch.get_sblock(conv))
    out = [int(x) for x in blk.writes[0].source.shape]
    wgt = [int(x) for x in blk.reads[-1].source.shape]
    return out, wgt


def _best_rows(rows_total, ocv, max_acc):
    for r in sorted(_divisors(rows_total), reverse=True):
        if r * ocv <= max_acc:
            return r
    return 1


# Register tiles for the six shapes of shapes.yaml, picked by a small grid search over this
# schedule's own parameters on an AVX-512 core (AMD Zen 5, 1 thread). They only choose among
# the schedule's knobs; every other shape gets the heuristic below.
# key: (OH, OW, Cin, Cout, KH, KW); the batch size does not matter.
KNOWN_TILES = {
    (108, 21, 32, 32, 3, 3): dict(row_axis="ow", rows=7, ocv=2, icu=8, order="oc_outer"),
    (108, 21, 64, 64, 3, 3): dict(row_axis="ow", rows=7, ocv=2, icu=4, order="oc_outer"),
    (108, 11, 128, 128, 3, 3): dict(row_axis="ow", rows=11, ocv=2, icu=8, order="oc_outer"),
    (54, 6, 192, 192, 3, 3): dict(
        row_axis="ow", rows=6, ocv=4, icu=4, order="ow_outer", icb=32, oh_par=2
    ),
    (54, 6, 256, 256, 3, 3): dict(
        row_axis="ow", rows=6, ocv=4, icu=1, order="oc_outer", icb=32, oh_par=2
    ),
    (54, 1, 256, 1318, 1, 6): dict(row_axis="oh", rows=6, ocv=4, icu=1, order="oc_outer"),
}


def pick_config(mod, conv="conv"):
    """Register tile = rows (along OW, or OH when OW is tiny) x (ocv * 16) output channels."""
    (N, OH, OW, Cout), (KH, KW, Cin, _) = _conv_shapes(mod, conv)
    key = (OH, OW, Cin, Cout, KH, KW)
    if key in KNOWN_TILES:
        return dict(KNOWN_TILES[key])
    nvec = max(1, Cout // VEC)
    if KH * KW > 1 and OW >= 4 and Cin >= 128 and Cin % 32 == 0 and nvec % 2 == 0:
        # A wide spatial conv on a small map (192 -> 256 channels at 54x6): its weights (1.7 MB)
        # do not stay in L1 or L2 for a row. Input channels blocked by 32 outside the spatial
        # loops keep a chunk in L1 for a whole strip of rows (measured on a 2-core Xeon, AVX-512,
        # 1 thread: 174 GFLOP/s against 69 with rows along OH); four strips per image run in
        # parallel.
        ocv = 4 if nvec % 4 == 0 and _best_rows(OW, 4, 24) * 4 >= 12 else 2
        return dict(
            row_axis="ow",
            rows=_best_rows(OW, ocv, 24),
            ocv=ocv,
            icu=4,
            order="oc_outer",
            icb=32,
            oh_par=min(4, OH),
        )
    # Rows along OW, output channels inside the (n, oh) rows: each row streams the weights once.
    # Where the weights outweigh the pixels (7x7 maps with 320+ input channels) that is a
    # weight-streaming loop: rows along OH, the channel blocks outermost and parallel, so a
    # block's weights stay in cache for every pixel (measured 1.1-1.3x faster on such 1x1 convs)
    weight_heavy = KH * KW * Cin > 4 * OH * OW and OH >= 4
    row_axis = "ow" if OW >= 4 and not weight_heavy else "oh"
    rows_total = OW if row_axis == "ow" else OH
    # 12-14 accumulators: with the ocv weight vectors and a broadcast they fit AVX-512's 32
    # registers without spilling (a 28-accumulator tile spills: measured 1.2-1.3x slower on the
    # 1x1 convs of MobileNetV2 on Zen 4)
    best = None
    for ocv in (4, 3, 2, 1):
        if nvec % ocv:
            continue
        r = _best_rows(rows_total, ocv, 16)
        acc = r * ocv
        key = (acc >= 12, -abs(acc - 13), ocv >= 2, ocv)
        if best is None or key > best[0]:
            best = (key, r, ocv)
    _, rows, ocv = best
    icu = 4 if Cin % 4 == 0 else 1
    return dict(row_axis=row_axis, rows=rows, ocv=ocv, icu=icu)


def schedule_conv(mod, config=None):
    """Apply the hand-written schedule. `config` may override keys of pick_config(mod)."""
    sch = s_tir.Schedule(mod)
    schedule_conv_in(sch, "conv", "pad", config)
    return sch.mod


def schedule_conv_in(sch, conv_name, pad_name=None, config=None):
    """Schedule the conv block `conv_name` (and its padding block `pad_name`, if it has one) of
    `sch` in place; returns the block that writes the conv's result back from the register tile
    (None for the multi-block form)."""
    (N, OH, OW, Cout), (KH, KW, Cin, _) = _conv_shapes(sch, conv_name)
    conv = sch.get_sblock(conv_name)
    pad = sch.get_sblock(pad_name) if pad_name and has_block(sch, pad_name) else None
    if is_depthwise(sch, conv_name):
        return _schedule_depthwise(sch, conv, pad, OW, Cout)
    cfg = dict(pick_config(sch, conv_name))
    if config:
        cfg.update(config)
    wb = None

    if not (has_block(sch, "conv_tail") or has_block(sch, "conv_mid")):
        if Cout % (cfg["ocv"] * VEC):
            cfg["ocv"] = 1
        wb = _schedule_block(sch, conv, cfg, OH, OW, oc_extent=Cout)
    else:
        # multi-block module (Cout % 16 != 0): each channel range is scheduled on its own
        for name, lo, hi in channel_ranges(Cout):
            ext = hi - lo
            bcfg = dict(cfg)
            tail = ext % VEC != 0
            nv = -(-ext // VEC)
            if not tail:
                bcfg["ocv"] = max(d for d in range(1, cfg["ocv"] + 1) if nv % d == 0)
                nv = bcfg["ocv"]
            if name != "conv" or tail:
                tot = OH if cfg["row_axis"] == "oh" else OW
                bcfg["rows"] = _best_rows(tot, nv, 24)
            _schedule_block(sch, sch.get_sblock(name), bcfg, OH, OW, oc_extent=ext, tail=tail)

    if pad is not None:
        n, h, w, c = sch.get_loops(pad)
        sch.parallel(sch.fuse(n, h))
        if int(sch.get(c).extent) % VEC == 0:  # all input channels (a grouped conv reads more)
            _, ci = sch.split(c, [None, VEC])
            sch.vectorize(ci)
        else:
            sch.vectorize(c)
    return wb


def is_depthwise(sch, conv_name):
    """One input channel per group: the weight has one input channel, the input more."""
    blk = sch.get(sch.get_sblock(conv_name))
    weight_in = int(blk.reads[-1].source.shape[2])
    return weight_in == 1 and int(blk.reads[-2].source.shape[-1]) > 1


def _depthwise_rows(OW):
    """Output pixels per register tile of the depthwise schedule: the largest divisor of OW up
    to 8 (one 16-channel vector each), or 8 with a tail when OW has no divisor above 2."""
    best = max(d for d in _divisors(OW) if d <= 8)
    return best if best > 2 or OW <= 8 else 8


def _schedule_depthwise(sch, conv, pad, OW, Cout):
    """A depthwise conv (one input channel per group) reads each input value only KH*KW times, so
    the padded copy a dense conv amortises would double its memory traffic: the padding is
    computed inline, as a select in the loads. The tile is `rows` output pixels by one vector of
    16 channels, accumulated in registers over the fully unrolled taps and written back once."""
    n, oh, ow, oc, kh, kw, ic = sch.get_loops(conv)[-7:]
    rows = _depthwise_rows(OW)
    # Vectors of 16 channels, or of 8 or 4 when they divide the channels and 16 does not: a
    # predicated channel tail would compile to scalar code.
    lanes = next((v for v in (VEC, 8, 4) if Cout % v == 0), VEC)
    oco, oci = sch.split(oc, [None, lanes])
    owo, rowi = sch.split(ow, [None, rows])
    sch.reorder(n, oh, oco, owo, ic, kh, kw, rowi, oci)
    wb = sch.cache_write(conv, 0, "local")
    sch.reverse_compute_at(wb, owo)
    sch.vectorize(oci)
    sch.unroll(rowi)
    sch.unroll(kh)
    sch.unroll(kw)
    sch.parallel(sch.fuse(n, oh))
    sch.decompose_reduction(conv, ic)
    wl = sch.get_loops(wb)
    sch.vectorize(wl[-1])
    sch.unroll(wl[-2])
    if pad is not None:
        sch.compute_inline(pad)
    return wb


def has_block(sch, name):
    try:
        sch.get_sblock(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def _schedule_block(sch, conv, cfg, OH, OW, oc_extent, tail=False):
    rows, ocv, icu = cfg["rows"], cfg["ocv"], cfg["icu"]
    n, oh, ow, oc, kh, kw, ic = sch.get_loops(conv)[-7:]
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
    if cfg.get("icb") and cfg["row_axis"] == "ow" and oco is not None:
        return _schedule_block_icb(
            sch, conv, cfg, n, oh, oco, ocv_l, oci, kh, kw, ico, ici, owo, rowi
        )
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
    fused = sch.fuse(*par) if len(par) > 1 else par[0]
    sch.parallel(fused)
    sch.decompose_reduction(conv, kh)
    # write-back: vectorize channels, unroll rows
    wl = sch.get_loops(wb)
    n_outer = len(outer) - len(par) + 1
    sch.vectorize(wl[-1])
    if len(wl) - n_outer >= 2:
        sch.unroll(wl[-2])
    return wb


def _schedule_block_icb(sch, conv, cfg, n, oh, oco, ocv_l, oci, kh, kw, ico, ici, owo, rowi):
    """Variant with the input channels blocked outside the spatial loops, so that a weight
    chunk (KH*KW*icb*ocb floats) stays in L1 while all rows of a thread's strip use it; the
    partial sums of the strip live in a local buffer (L1/L2) between chunks."""
    icb, icu = cfg["icb"], cfg["icu"]
    ico2, ico = sch.split(ico, [None, icb // icu])
    oh_par = cfg.get("oh_par", 2)
    ohO, ohI = sch.split(oh, [oh_par, None])
    sch.reorder(n, ohO, oco, ico2, ohI, owo, kh, kw, ico, ici, rowi, ocv_l, oci)
    wb = sch.cache_write(conv, 0, "local")
    sch.reverse_compute_at(wb, oco)
    sch.vectorize(oci)
    sch.unroll(ocv_l)
    sch.unroll(rowi)
    if icu > 1:
        sch.unroll(ici)
    fused = sch.fuse(n, ohO)
    sch.parallel(fused)
    sch.decompose_reduction(conv, ico2)
    wl = sch.get_loops(wb)
    sch.vectorize(wl[-1])
    return wb


# ------------------------------------------------------------------------------------------------
# Any PrimFunc of a Relax build
# ------------------------------------------------------------------------------------------------
def _blocks(sch: Any) -> list[Any]:
    if not has_block(sch, "root"):
        raise ValueError("PrimFunc without a root block")
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _is_reduction(sch: Any, blk: Any) -> bool:
    from tvm import tirx

    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(blk).iter_vars)


def _is_conv_block(sch: Any, blk: Any) -> bool:
    """A conv's block as TE and TOPI write it: seven loops (n, oh, ow, oc over kh, kw, ic), a 4-D
    output and a 4-D weight read last."""
    from tvm import tirx

    b = sch.get(blk)
    kinds = [iv.iter_type == tirx.IterVar.CommReduce for iv in b.iter_vars]
    return (
        kinds == [False] * 4 + [True] * 3
        and len(b.writes) == 1
        and len(b.writes[0].source.shape) == 4
        and len(b.reads) >= 2
        and len(b.reads[-1].source.shape) == 4
    )


def schedule_primfunc(sch: Any) -> str:
    """Schedules any PrimFunc a Relax build makes, and says which schedule it got: `conv` or
    `depthwise` (a conv with its fused element-wise epilogue computed in the register tile's
    write-back), `elementwise` (parallel, vectorised loops) or `reduction` (pooling, means,
    matmuls, softmax: the generic schedule of generic_schedule)."""
    blocks = _blocks(sch)
    names = [sch.get(b).name_hint for b in blocks]
    red = [i for i, b in enumerate(blocks) if _is_reduction(sch, b)]
    if not red:
        _schedule_elementwise(sch, blocks)
        return "elementwise"
    if len(red) > 1 or not _is_conv_block(sch, blocks[red[0]]):
        generic_schedule(sch)
        return "reduction"
    conv_name = names[red[0]]
    pad = _fold_prologue(sch, blocks[: red[0]], conv_name)
    blocks = _blocks(sch)
    ci = [sch.get(b).name_hint for b in blocks].index(conv_name)
    epilogue = blocks[ci + 1 :]
    # Fold the element-wise chain into its last block, then into the tile's write-back.
    for b in epilogue[:-1]:
        sch.compute_inline(b)
    depthwise = is_depthwise(sch, conv_name)
    wb = schedule_conv_in(sch, conv_name, pad)
    if epilogue:
        last = epilogue[-1]
        if wb is None:
            raise ValueError("a fused multi-block conv has no single write-back for its epilogue")
        sch.reverse_compute_inline(last)
    return "depthwise" if depthwise else "conv"


def _fold_prologue(sch: Any, before: list[Any], conv_name: str) -> str | None:
    """The element-wise blocks a fused conv function computes before its conv, folded where they
    cost nothing; returns the padding block left for the conv's schedule, if any.

    - Those only the epilogue reads (another branch's batch norm, added to this conv's output)
      are inlined into it: computed in the register tile's write-back.
    - Those the conv reads (a batch norm in front of it) are inlined into its padding copy,
      which reads every input value once. Without one (a 1x1 or VALID conv) the chain is one
      stage of its own, parallel and vectorised: inlined into the conv it would be recomputed
      at every read, once per kernel tap and block of output channels.
    - A padding block that pads nothing (a 1x1 conv's copy of its input) is inlined: the conv
      reads its input in place."""
    feeds_conv: set[str] = {conv_name}
    pad: str | None = None
    for blk in reversed(before):
        name = sch.get(blk).name_hint
        consumers = {sch.get(c).name_hint for c in sch.get_consumers(blk)}
        if consumers & feeds_conv:
            feeds_conv.add(name)
            if name.startswith("pad") and pad is None:
                pad = name
        else:
            sch.compute_inline(blk)  # read by the epilogue alone
    if pad is not None and _is_copy(sch, sch.get_sblock(pad)):
        sch.compute_inline(sch.get_sblock(pad))
        feeds_conv.discard(pad)
        pad = None
    chain = [b for b in _blocks(sch) if sch.get(b).name_hint in feeds_conv - {conv_name, pad}]
    if pad is not None:
        for blk in chain:
            sch.compute_inline(blk)  # into the pad, or into a block that is inlined next
    elif chain:
        _schedule_elementwise(sch, chain)
    return pad


def _is_copy(sch: Any, blk: Any) -> bool:
    """A block whose value is one load (no select for a border): a padding of zero."""
    from tvm import ir
    from tvm.tirx.stmt import BufferStore

    body = sch.get(blk).body
    return isinstance(body, BufferStore) and isinstance(body.value, ir.TensorLoad)


def generic_schedule(sch: Any) -> None:
    """Any PrimFunc: element-wise producers inlined where they can be; every reduction block
    with its spatial loops outside the reduction, the outer ones fused and parallel, the last
    split into a vector of channels innermost; every other block parallel and vectorised."""
    blocks = _blocks(sch)
    for b in blocks[:-1]:
        if not _is_reduction(sch, b):
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 - not inlinable: scheduled on its own below
                pass
    for b in _blocks(sch):
        if _is_reduction(sch, b):
            _schedule_reduction_block(sch, b)
        else:
            _schedule_elementwise(sch, [b])


def _lanes(extent: int) -> int:
    return next((v for v in (VEC, 8, 4) if extent % v == 0), 1)


def _schedule_reduction_block(sch: Any, blk: Any) -> None:
    from tvm import tirx

    loops = sch.get_loops(blk)
    kinds = [iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(blk).iter_vars]
    if len(loops) != len(kinds) or kinds != sorted(kinds):
        return  # not the plain spatial-then-reduce nest this schedule is for: left as it is
    ns = kinds.count(False)
    spatial, reduce = loops[:ns], loops[ns:]
    if not spatial:
        return
    last = spatial[-1]
    lanes = _lanes(int(sch.get(last).extent))
    outer = list(spatial[:-1])
    inner = None
    if lanes > 1 and reduce:
        lo, inner = sch.split(last, [None, lanes])
        outer.append(lo)
        sch.reorder(*outer, *reduce, inner)
    elif not reduce:
        outer.append(last)
    if outer:
        fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
        if int(sch.get(fused).extent) > 1:
            sch.parallel(fused)
    if inner is not None:
        sch.vectorize(inner)
        sch.decompose_reduction(blk, reduce[0])


def _schedule_elementwise(sch: Any, blocks: list[Any]) -> None:
    for b in blocks[:-1]:
        sch.compute_inline(b)
    last = blocks[-1]
    loops = sch.get_loops(last)
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = int(sch.get(fused).extent)
    if total % VEC == 0 and total >= VEC:
        outer, inner = sch.split(fused, [None, VEC])
        sch.parallel(outer)
        sch.vectorize(inner)
    else:
        sch.parallel(fused)
