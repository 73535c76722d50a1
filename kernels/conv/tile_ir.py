"""The convolution's register tile as LLVM vector code: a Numba ``@intrinsic`` and its builders.

``fma_tile_intrinsic(pixels, lanes)`` makes the intrinsic ``_fma_tile`` that
``kernels.conv.cpu._tile_oc`` calls: ``pixels`` accumulators of ``lanes`` values, one vector
load of the weights and one broadcast input per pixel and step, ``llvm.fma``, and stores
transposed in registers (``_transposed``). docs/kernels-conv.md explains the design.

Numba's on-disk cache keys a function on the source of its own file only, and this file's
code is compiled into the kernels of ``cpu.py``: ``SOURCE_HASH`` (of this file) is part of
the name of every variant (``cpu.kernels``), so a change here compiles them afresh.
"""

import hashlib
from pathlib import Path

from llvmlite import ir
from numba.core import cgutils
from numba.core import types as nb_types
from numba.extending import intrinsic

OFFSETS = 8  # pixels of a register tile whose input offsets fit in general registers
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]

I64, I32 = ir.IntType(64), ir.IntType(32)


def _transposed(pixels: int, lanes: int) -> tuple | None:
    """How ``pixels`` accumulators of ``lanes`` lanes (accumulator ``p`` holds lanes ``(p, l)``,
    ``l < lanes``) become rows ``l`` of ``pixels`` values: ``(stages, rows)``, ``stages`` a list
    of shuffle stages, each a list of ``(a, b, mask)`` (``shufflevector`` of vectors ``a`` and
    ``b``), after which vector ``v`` holds rows ``rows[v]`` (``lanes / pixels`` whole rows, in
    order); ``None`` unless ``pixels`` is a power of two <= ``lanes``. Each stage merges pairs of
    vectors of the same rows and disjoint pixels and splits each merge into its lower and
    upper rows: ``log2(pixels)`` stages of ``pixels`` shuffles, against ``lanes * pixels``
    single-value stores."""
    if pixels > lanes or pixels & (pixels - 1):
        return None
    vecs = [[(p, lane) for lane in range(lanes)] for p in range(pixels)]
    stages = []
    while len({p for p, _ in vecs[0]}) < pixels:
        low, high = [], []
        for i in range(0, pixels, 2):
            cat = vecs[i] + vecs[i + 1]
            both = sorted(cat, key=lambda e: (e[1], e[0]))
            low.append((i, i + 1, [cat.index(e) for e in both[:lanes]], both[:lanes]))
            high.append((i, i + 1, [cat.index(e) for e in both[lanes:]], both[lanes:]))
        stages.append([op[:3] for op in low + high])
        vecs = [op[3] for op in low + high]
    return stages, [[lane for _, lane in v[::pixels]] for v in vecs]


def _store_lanes(builder, accs, outp, row0, pitch, j0, valid) -> None:
    """Store ``acc[p][l]`` at ``out[row0 + l, j0 + p]`` for ``p < valid``, one value at a time."""
    for p, a in enumerate(accs):
        with builder.if_then(builder.icmp_signed("<", I64(p), valid), likely=True):
            col = builder.add(j0, I64(p))
            for lane in range(a.type.count):
                at = builder.add(builder.mul(builder.add(row0, I64(lane)), pitch), col)
                builder.store(builder.extract_element(a, I64(lane)), builder.gep(outp, [at]))


def _store_rows(builder, accs, plan, outp, row0, pitch, j0, align) -> None:
    """Store ``acc[p][l]`` at ``out[row0 + l, j0 + p]`` for all ``p``: transpose the
    accumulators as ``plan = _transposed(len(accs))`` says, then one vector store per row."""
    stages, rows = plan
    pixels, vecs = len(accs), list(accs)
    for stage in stages:
        vecs = [
            builder.shuffle_vector(vecs[a], vecs[b], ir.Constant(ir.VectorType(I32, len(m)), m))
            for a, b, m in stage
        ]
    for vec, lanes in zip(vecs, rows, strict=True):
        for r, lane in enumerate(lanes):
            part = vec
            if pixels < vec.type.count:
                mask = ir.Constant(
                    ir.VectorType(I32, pixels), list(range(r * pixels, (r + 1) * pixels))
                )
                part = builder.shuffle_vector(vec, vec, mask)
            at = builder.add(builder.mul(builder.add(row0, I64(lane)), pitch), j0)
            dest = builder.bitcast(builder.gep(outp, [at]), part.type.as_pointer())
            builder.store(part, dest, align=align)


def _fma_loop(builder, ptrs, offsets, bounds, start, fma, align) -> list:
    """Emit the loop ``acc[p] = start + sum_{k0 <= k < k1} X[inner[k] + offset_p] * m[k]``
    (vectors of ``start``'s type) and return the accumulators, with the builder at the
    loop's exit. ``ptrs = (X, inner, m)`` data pointers, ``bounds = (k0, k1)``; ``offsets``:
    a list of i64 offsets, one per pixel (a general register each), or ``(first, count)``:
    pixel ``p < count`` at ``first + p``, read through one address and constant
    displacements."""
    xp, inner_p, mp = ptrs
    vty = start.type
    row = isinstance(offsets, tuple)
    entry = builder.basic_block
    head = builder.append_basic_block("tile.head")
    body = builder.append_basic_block("tile.body")
    done = builder.append_basic_block("tile.done")
    builder.branch(head)
    builder.position_at_end(head)
    k = builder.phi(I64)
    accs = [builder.phi(vty) for _ in range(offsets[1] if row else len(offsets))]
    k.add_incoming(bounds[0], entry)
    for a in accs:
        a.add_incoming(start, entry)
    builder.cbranch(builder.icmp_signed("<", k, bounds[1]), body, done)
    builder.position_at_end(body)
    ik = builder.load(builder.gep(inner_p, [k]), typ=I64)
    mv = builder.load(builder.gep(mp, [builder.mul(k, I64(vty.count))]), typ=vty, align=align)
    if row:
        first = builder.gep(xp, [builder.add(ik, offsets[0])])
        addresses = [builder.gep(first, [I64(p)]) for p in range(offsets[1])]
    else:
        addresses = [builder.gep(xp, [builder.add(ik, o)]) for o in offsets]
    splat = ir.Constant(ir.VectorType(I32, vty.count), [0] * vty.count)
    for at, a in zip(addresses, accs, strict=True):
        xv = builder.load(at, typ=vty.element)
        xs = builder.insert_element(ir.Constant(vty, ir.Undefined), xv, I32(0))
        bc = builder.shuffle_vector(xs, ir.Constant(vty, ir.Undefined), splat)
        a.add_incoming(builder.call(fma, [bc, mv, a]), body)
    k.add_incoming(builder.add(k, I64(1)), body)
    builder.branch(head)
    builder.position_at_end(done)
    return accs


def _store(builder, accs, outp, row0, pitch, j0, valid, align) -> None:
    """Store ``acc[p][l]`` at ``out[row0 + l, j0 + p]`` for ``p < valid``: transposed in
    registers and one vector store per row when all of them are (``_store_rows``), else one
    value at a time."""
    plan = _transposed(len(accs), accs[0].type.count)
    if plan is None:
        _store_lanes(builder, accs, outp, row0, pitch, j0, valid)
        return
    full = builder.icmp_signed(">=", valid, I64(len(accs)))
    with builder.if_else(full, likely=True) as (whole, edge):
        with whole:
            _store_rows(builder, accs, plan, outp, row0, pitch, j0, align)
        with edge:
            _store_lanes(builder, accs, outp, row0, pitch, j0, valid)


def _tile_values(context, builder, signature, args, lanes: int) -> tuple:
    """The values the tile's code reads, from the intrinsic's arguments: ``(ptrs, outer, out,
    ints, start, fma, align)`` with ``ptrs = (X, inner, m)`` and ``outer``, ``out`` data
    pointers, ``ints = (j, k0, k1, o0, count, pitch)`` as i64 (``pitch``: ``out``'s row
    length), ``start`` the vector ``iv`` and ``fma`` the ``llvm.fma`` of its type."""
    tys = signature.args
    arrays = [context.make_array(tys[i])(context, builder, args[i]) for i in (0, 1, 2, 6, 7, 8)]
    xp, inner_p, outer_p, mp, ivp, outp = (a.data for a in arrays)
    ints = [context.cast(builder, args[i], tys[i], nb_types.int64) for i in (3, 4, 5, 9, 10)]
    fty = context.get_value_type(tys[0].dtype)
    vty = ir.VectorType(fty, lanes)
    align = context.get_abi_sizeof(fty)
    pitch = cgutils.unpack_tuple(builder, arrays[5].shape, 2)[1]
    start = builder.load(ivp, typ=vty, align=align)
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty] * 3), f"llvm.fma.v{lanes}f{8 * align}"
    )
    return (xp, inner_p, mp), outer_p, outp, (*ints, pitch), start, fma, align


def _emit_tile(context, builder, signature, args, pixels: int, lanes: int) -> None:
    """The code of one call of ``_fma_tile`` (see ``fma_tile_intrinsic``)."""
    ptrs, outer_p, outp, ints, start, fma, align = _tile_values(
        context, builder, signature, args, lanes
    )
    j0, kb, ke, row0, valid, pitch = ints

    def offset(p):
        return builder.load(builder.gep(outer_p, [builder.add(j0, I64(p))]), typ=I64)

    def groups():
        """The tile as groups of at most ``OFFSETS`` pixels, one loop each."""
        for g in range(0, pixels, OFFSETS):
            offs = [offset(p) for p in range(g, min(g + OFFSETS, pixels))]
            accs = _fma_loop(builder, ptrs, offs, (kb, ke), start, fma, align)
            col = builder.add(j0, I64(g))
            _store(builder, accs, outp, row0, pitch, col, builder.sub(valid, I64(g)), align)

    if pixels <= OFFSETS:
        groups()
        return
    first = offset(0)
    run = builder.icmp_unsigned("==", builder.sub(offset(pixels - 1), first), I64(pixels - 1))
    with builder.if_else(run, likely=True) as (consecutive, scattered):
        with consecutive:
            accs = _fma_loop(builder, ptrs, (first, pixels), (kb, ke), start, fma, align)
            _store(builder, accs, outp, row0, pitch, j0, valid, align)
        with scattered:
            groups()


def fma_tile_intrinsic(pixels: int, lanes: int):
    """An intrinsic ``_fma_tile(X, inner, outer, j, k0, k1, m, iv, out, o0, count)``: the
    register tile ``out[o0 + l, j + p] = iv[l] + sum_{k0 <= k < k1} X[inner[k] + outer[j + p]]
    * m[k, l]`` for ``l < lanes`` and ``p < count <= pixels``, written as LLVM vector code:
    ``pixels`` accumulators of ``lanes`` values (the backend splits each into the vector registers
    of the target: 16 float32 are 1 zmm, 2 ymm or 4 q), one vector load of ``m`` and one
    broadcast of ``X`` per pixel and step, ``llvm.fma`` (the product is rounded once, as by
    ``contract``). ``X, m, iv, out`` share one float dtype; ``inner, outer`` are uint64
    (``outer`` increasing within a tile). A tile of more than ``OFFSETS`` pixels runs as one
    loop when its offsets are consecutive (``outer[j + p] = outer[j] + p``: one general
    register for all the pixels), else as groups of ``OFFSETS`` pixels, one loop each."""

    @intrinsic
    def _fma_tile(typingctx, X, inner, outer, j, k0, k1, m, iv, out, o0, count):
        sig = nb_types.void(X, inner, outer, j, k0, k1, m, iv, out, o0, count)

        def codegen(context, builder, signature, args):
            _emit_tile(context, builder, signature, args, pixels, lanes)
            return context.get_dummy_value()

        return sig, codegen

    return _fma_tile
