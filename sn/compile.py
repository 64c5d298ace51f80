"""Network -> the flat arrays the kernels run (kernels.Plan).

Stages are the layers of build-net after the input, in order; units that have
incoming connections but belong to no layer are grouped by depth after them.
Each block a helper recorded becomes a dense op when the connections it
describes are still exactly there (nothing cut or re-shared since) and every
connection into a unit of the block has the same epsilon; all other live
connections go to the generic sparse op of their stage.

A plan is cached on the network and rebuilt when its structure, its epsilons,
the default nonlinearity, the input/output layers or the float type change.
"""

import numpy as np

from . import kernels as K
from .errors import SNError
from .netlib import current_nlf, units_of


class Compiled:
    """A plan with what it was built from."""

    def __init__(self, plan, stage_names, n_block_conns, n_sparse_conns):
        self.plan = plan
        self.stage_names = stage_names
        self.n_block_conns = n_block_conns
        self.n_sparse_conns = n_sparse_conns


def compiled(interp, all_sparse=False, unit_eps=False):
    """The cached plan of the interpreter's network, rebuilt when needed; with
    `unit_eps` every epsilon is 1 (for optimizers that want plain gradients)."""
    net = interp.net
    nlf = current_nlf(interp)
    inputs = units_of(interp.get("input-layer"), "input-layer", net)
    outputs = units_of(interp.get("output-layer"), "output-layer", net)
    key = (net.version, nlf.key(), net.dtype.str, inputs.tobytes(), outputs.tobytes(), all_sparse,
           unit_eps)
    cache = getattr(net, "plan_cache", None)
    if cache is None:
        cache = net.plan_cache = {}
    if key not in cache:
        cache.clear()
        cache[key] = compile_net(net, nlf, inputs, outputs, all_sparse)
        if unit_eps:
            plan = cache[key].plan
            cache[key].plan = plan._replace(csr_eps=np.ones_like(plan.csr_eps),
                                            ueps=np.ones_like(plan.ueps))
    return cache[key]


def buffers(net):
    """The network's own arrays, which the kernels update in place."""
    n, m = net.nunits, net.nweights
    return K.Buffers(net.x[:n], net.s[:n], net.b[:n], net.g[:n], net.gg[:n], net.sqb[:n],
                     net.w[:m], net.delta[:m], net.acc[:m], net.hess[:m], net.hq[:m])


def compile_net(net, default_nlf, inputs, outputs, all_sparse=False):
    if len(outputs) == 0:
        raise SNError("the network has no output layer: build it with build-net")
    live = net.alive()
    stages, names = _stages(net, live, inputs, default_nlf)
    stage_of = np.full(net.nunits, -1, dtype=np.int64)
    for k, (lo, hi, _) in enumerate(stages):
        stage_of[lo:hi] = k
    _check_order(net, live, stage_of, names)
    if np.any(stage_of[outputs] < 0):
        raise SNError("an output unit has no incoming connection: nothing computes it")
    blocks, ueps, in_block = ([], np.zeros(net.nunits), np.zeros(net.nconn, dtype=bool))
    if not all_sparse:
        blocks, ueps, in_block = _valid_blocks(net, live, stage_of)
    nlfs = []
    ops, csr_ptr, csr_parts, taps_parts, pairs_parts = [], [], [], [], []
    stage_rows = []
    n_taps = n_pairs = n_csr = n_ptr = 0
    sparse = live[~in_block[live]]
    sparse_by_stage = _group(sparse, stage_of[net.cdst[sparse]])
    for k, (lo, hi, nlf) in enumerate(stages):
        op_lo = len(ops)
        for block in blocks:
            if stage_of[block.dst_lo] != k:
                continue
            op, t, p = _block_op(net, block, n_taps, n_pairs)
            ops.append(op)
            if t is not None:
                taps_parts.append(t)
                pairs_parts.append(p)
                n_taps += t.size
                n_pairs += len(p)
        conns = sparse_by_stage.get(k)
        if conns is not None and len(conns):
            dst = net.cdst[conns]
            order = np.lexsort((conns, dst))
            conns, dst = conns[order], dst[order]
            counts = np.bincount(dst - lo, minlength=hi - lo)
            ops.append([K.OP_SPARSE, lo, hi - lo, 0, 0, 0, n_ptr, 0, 0, 0, -1, 0])
            csr_ptr.append(n_csr + np.concatenate([[0], np.cumsum(counts)]))
            n_ptr += hi - lo + 1
            csr_parts.append(conns)
            n_csr += len(conns)
        row = _nlf_row(nlfs, nlf)
        stage_rows.append([lo, hi, row, op_lo, len(ops)])
    plan = _plan(net, stage_rows, nlfs, ops, csr_ptr, csr_parts, taps_parts, pairs_parts,
                 ueps, inputs, outputs)
    return Compiled(plan, names, int(in_block.sum()), n_csr)


def _plan(net, stage_rows, nlfs, ops, csr_ptr, csr_parts, taps_parts, pairs_parts, ueps,
          inputs, outputs):
    ft = net.dtype
    conns = np.concatenate(csr_parts) if csr_parts else np.zeros(0, dtype=np.int64)
    return K.Plan(
        stages=np.array(stage_rows, dtype=np.int64).reshape(-1, 5),
        nlfs=np.array(nlfs, dtype=np.float64).reshape(-1, 5),
        ops=np.array(ops, dtype=np.int64).reshape(-1, K.OP_COLUMNS),
        csr_ptr=np.concatenate(csr_ptr).astype(np.int64) if csr_ptr else np.zeros(1, np.int64),
        csr_src=net.csrc[conns].astype(np.int32),
        csr_w=net.cw[conns].astype(np.int32),
        csr_eps=net.ceps[conns].astype(ft),
        taps=(np.concatenate(taps_parts) if taps_parts else np.zeros(0)).astype(np.int32),
        pairs=(np.concatenate(pairs_parts) if pairs_parts else np.zeros((0, 3))).astype(np.int64),
        ueps=ueps[: net.nunits].astype(ft),
        input_units=np.asarray(inputs, dtype=np.int64),
        output_units=np.asarray(outputs, dtype=np.int64),
    )


def _nlf_row(nlfs, nlf):
    row = nlf.row()
    if row not in nlfs:
        nlfs.append(row)
    return nlfs.index(row)


def _group(conns, keys):
    groups = {}
    for k in np.unique(keys):
        groups[int(k)] = conns[keys == k]
    return groups


# ---- stages --------------------------------------------------------------

def _stages(net, live, inputs, default_nlf):
    """(lo, hi, nlf) per stage, and a name per stage for messages."""
    is_input = np.zeros(net.nunits, dtype=bool)
    is_input[inputs] = True
    covered = np.zeros(net.nunits, dtype=bool)
    stages, names = [], []
    for layer in net.layers:
        if is_input[layer.lo: layer.lo + layer.n].all():
            continue
        if covered[layer.lo: layer.lo + layer.n].any():
            raise SNError(f"layer {layer.name} overlaps another layer")
        covered[layer.lo: layer.lo + layer.n] = True
        stages.append((layer.lo, layer.lo + layer.n, layer.nlf or default_nlf))
        names.append(layer.name)
    fed = np.zeros(net.nunits, dtype=bool)
    fed[net.cdst[live]] = True
    loose = np.flatnonzero(fed & ~covered & ~is_input)
    if len(loose):
        for level, units in _levels(net, live, loose):
            for lo, hi in _runs(units):
                stages.append((lo, hi, default_nlf))
                names.append(f"units {lo}..{hi - 1}")
    return stages, names


def _levels(net, live, loose):
    """Units not in a layer, grouped by their depth among themselves."""
    depth = {int(u): 0 for u in loose}
    src, dst = net.csrc[live], net.cdst[live]
    inner = np.isin(src, loose) & np.isin(dst, loose)
    edges = list(zip(src[inner].tolist(), dst[inner].tolist()))
    for _ in range(len(loose) + 1):
        changed = False
        for a, b in edges:
            if depth[b] < depth[a] + 1:
                depth[b] = depth[a] + 1
                changed = True
        if not changed:
            break
    else:
        raise SNError("the units outside build-net's layers form a loop: "
                      "sn trains feed-forward networks")
    levels = {}
    for u, d in depth.items():
        levels.setdefault(d, []).append(u)
    return [(d, np.array(sorted(us))) for d, us in sorted(levels.items())]


def _runs(units):
    """Consecutive runs (lo, hi) of a sorted unit array."""
    breaks = np.flatnonzero(np.diff(units) != 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(units, breaks)]


def _check_order(net, live, stage_of, names):
    src_stage = stage_of[net.csrc[live]]
    dst_stage = stage_of[net.cdst[live]]
    bad = np.flatnonzero((src_stage >= 0) & (src_stage >= dst_stage))
    if len(bad):
        c = live[bad[0]]
        a, b = int(net.csrc[c]), int(net.cdst[c])
        raise SNError(f"the connection {a} -> {b} goes from {names[stage_of[a]]} to "
                      f"{names[stage_of[b]]}, which is computed before or with it: "
                      "sn trains feed-forward networks")


# ---- blocks ----------------------------------------------------------------

def _valid_blocks(net, live, stage_of):
    """The recorded blocks whose connections are intact, the epsilon of block
    connections per unit, and which connections the valid blocks cover."""
    alive = net.calive[: net.nconn]
    candidates = []
    for block in net.blocks:
        lo, hi = block.conn_lo, block.conn_hi
        if hi > net.nconn or not alive[lo:hi].all():
            continue
        src, dst, w = block.triples()
        if not (np.array_equal(net.csrc[lo:hi], src) and np.array_equal(net.cdst[lo:hi], dst)
                and np.array_equal(net.cw[lo:hi], w)):
            continue
        stages = stage_of[dst]
        if len(stages) == 0 or stages[0] < 0 or not (stages == stages[0]).all():
            continue
        if block.kind == "conv" and block.bgunits is not None:
            bg = block.bgunits[block.bgunits >= 0]
            if len(bg) and not (net.x[bg] == net.x[bg[0]]).all():
                continue
        candidates.append(block)
    ueps = np.zeros(net.nunits)
    if candidates:
        dst = np.concatenate([net.cdst[b.conn_lo: b.conn_hi] for b in candidates])
        eps = np.concatenate([net.ceps[b.conn_lo: b.conn_hi] for b in candidates])
        ueps[dst[::-1]] = eps[::-1]                  # the first connection's epsilon
        mixed = np.zeros(net.nunits, dtype=bool)
        mixed[dst[eps != ueps[dst]]] = True
        candidates = [b for b in candidates if not mixed[net.cdst[b.conn_lo: b.conn_hi]].any()]
    valid = candidates
    in_block = np.zeros(net.nconn, dtype=bool)
    for block in valid:
        in_block[block.conn_lo: block.conn_hi] = True
    return valid, ueps, in_block


def _block_op(net, block, n_taps, n_pairs):
    """The op row of a valid block (and its taps and pairs for a conv)."""
    if block.kind == "full":
        return [K.OP_FULL, block.dst_lo, block.dst_n, block.src_lo, block.src_n, block.w_lo,
                0, 0, 0, 0, -1, 0], None, None
    if block.kind == "bias":
        return [K.OP_BIAS, block.dst_lo, block.dst_n, 0, 1, block.w_lo, 0, 0, 0, 0, -1,
                int(block.shared)], None, None
    bg = -1
    if block.bgunits is not None and (block.bgunits >= 0).any():
        bg = int(block.bgunits[block.bgunits >= 0][0])
    ntaps = block.taps.shape[0]
    return ([K.OP_CONV, block.dst_lo, block.dst_n, block.src_lo, block.src_n, 0,
             n_taps, n_pairs, ntaps, len(block.pairs), bg, int(block.shared)],
            block.taps.ravel(), block.pairs)
