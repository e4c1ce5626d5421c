// Argmax and top-k over a flat f32 vector (the logits), in two or more passes:
// a partial pass where each workgroup reduces one chunk, then merges down to one result.
// Bindings (every entry): 0 params (uniform), 1 src (read), 2 dst (read_write), all as u32.
//   argmax_partial: src = logits, dst = (key, index) per workgroup
//   argmax_final:   src = those pairs, dst[0] = index
//   topk_partial:   src = logits, dst = k (key, index) pairs per workgroup, best first
//   topk_merge:     src = lists of k pairs, dst = one list of k pairs per WG lists
//   topk_local:     src = logits, dst = k pairs per invocation (p.lists invocations): each
//                   invocation keeps its own sorted top-k of a strided share of the logits
//   topk_local_merge: one invocation, src = those lists, dst = the final k pairs
// The local pair runs without barriers, for CPU adapters, where every barrier of the
// round-by-round workgroup reduction switches between all SIMD batches.
// Order: values descending by IEEE totalOrder with -0 == +0, ties by lowest index. Values are
// compared as order-preserving u32 keys, so -inf needs no special case and subgroupMax is exact.
// The final list (p.last == 1) holds f32 bits instead of keys. Unfilled slots are (-inf, NONE).

struct Params {
    n: u32,
    k: u32,
    lists: u32,
    last: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// Invocations per workgroup: a power of two <= MAX_WG.
override WG: u32 = 256u;
const MAX_WG: u32 = 256u;
// Logits per invocation: top-k keeps them in registers; argmax streams them.
const ITEMS: u32 = 8u;
const ARGMAX_ITEMS: u32 = 16u;
const NONE: u32 = 0xffffffffu;

struct Cand {
    key: u32,
    i: u32,
}

// Order-preserving key of an f32's bits (-0 maps like +0).
fn key_of(bits: u32) -> u32 {
    let b = select(bits, 0u, bits == 0x80000000u);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn bits_of(c: Cand) -> u32 {
    if c.i == NONE {
        return 0xff800000u;
    }
    return select(~c.key, c.key & 0x7fffffffu, (c.key & 0x80000000u) != 0u);
}

// Whether `a` ranks before `b`. The sentinel (0, NONE) ranks after everything.
fn better(a: Cand, b: Cand) -> bool {
    return a.key > b.key || (a.key == b.key && a.i < b.i);
}

var<workgroup> red_k: array<u32, MAX_WG>;
var<workgroup> red_i: array<u32, MAX_WG>;
var<private> lid: u32;
var<private> sg_id: u32;
var<private> sg_lane: u32;
var<private> n_sg: u32;

// Best candidate of the workgroup, returned to every invocation (call in uniform control flow).
fn wg_best(c: Cand) -> Cand {
#if SUBGROUP
    let mk = subgroupMax(c.key);
    let mi = subgroupMin(select(NONE, c.i, c.key == mk));
    if sg_lane == 0u {
        red_k[sg_id] = mk;
        red_i[sg_id] = mi;
    }
    workgroupBarrier();
    var w = Cand(red_k[0], red_i[0]);
    for (var s = 1u; s < n_sg; s++) {
        let o = Cand(red_k[s], red_i[s]);
        if better(o, w) {
            w = o;
        }
    }
#else
    red_k[lid] = c.key;
    red_i[lid] = c.i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            let o = Cand(red_k[lid + s], red_i[lid + s]);
            if better(o, Cand(red_k[lid], red_i[lid])) {
                red_k[lid] = o.key;
                red_i[lid] = o.i;
            }
        }
        workgroupBarrier();
    }
    let w = Cand(red_k[0], red_i[0]);
#endif
    workgroupBarrier();
    return w;
}

// Slot `slot` of dst: a key (internal lists) or f32 bits (the final list).
fn put(slot: u32, w: Cand) {
    dst[2u * slot] = select(w.key, bits_of(w), p.last == 1u);
    dst[2u * slot + 1u] = w.i;
}

@compute @workgroup_size(WG)
fn argmax_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    lid = li;
#if SUBGROUP
    sg_id = sid;
    sg_lane = lane;
    n_sg = nsg;
#endif
    let g = linear_group(wid, nwg);
    let base = g * WG * ARGMAX_ITEMS;
    if base >= p.n {
        return;
    }
    var best = Cand(0u, NONE);
    for (var j = 0u; j < ARGMAX_ITEMS; j++) {
        let idx = base + j * WG + lid;
        if idx < p.n {
            let c = Cand(key_of(src[idx]), idx);
            if better(c, best) {
                best = c;
            }
        }
    }
    let w = wg_best(best);
    if lid == 0u {
        dst[2u * g] = w.key;
        dst[2u * g + 1u] = w.i;
    }
}

@compute @workgroup_size(WG)
fn argmax_final(
    @builtin(local_invocation_index) li: u32,
#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    lid = li;
#if SUBGROUP
    sg_id = sid;
    sg_lane = lane;
    n_sg = nsg;
#endif
    var best = Cand(0u, NONE);
    for (var l = lid; l < p.lists; l += WG) {
        let c = Cand(src[2u * l], src[2u * l + 1u]);
        if better(c, best) {
            best = c;
        }
    }
    let w = wg_best(best);
    if lid == 0u {
        dst[0] = w.i;
    }
}

@compute @workgroup_size(WG)
fn topk_partial(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    lid = li;
#if SUBGROUP
    sg_id = sid;
    sg_lane = lane;
    n_sg = nsg;
#endif
    let g = linear_group(wid, nwg);
    let base = g * WG * ITEMS;
    if base >= p.n {
        return;
    }
    var keys: array<u32, ITEMS>;
    for (var j = 0u; j < ITEMS; j++) {
        let idx = base + j * WG + lid;
        if idx < p.n {
            keys[j] = key_of(src[idx]);
        }
    }
    // Round r picks the best candidate ranked after the one picked in round r - 1,
    // i.e. after (pk, pi - 1); (NONE, 0) admits everything.
    var pk = NONE;
    var pi = 0u;
    for (var r = 0u; r < p.k; r++) {
        var best = Cand(0u, NONE);
        for (var j = 0u; j < ITEMS; j++) {
            let c = Cand(keys[j], base + j * WG + lid);
            let after = c.key < pk || (c.key == pk && c.i >= pi);
            if c.i < p.n && after && better(c, best) {
                best = c;
            }
        }
        let w = wg_best(best);
        if lid == 0u {
            put(g * p.k + r, w);
        }
        if w.i != NONE {
            pk = w.key;
            pi = w.i + 1u;
        }
    }
}

@compute @workgroup_size(WG)
fn topk_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
#if SUBGROUP
    @builtin(subgroup_id) sid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    lid = li;
#if SUBGROUP
    sg_id = sid;
    sg_lane = lane;
    n_sg = nsg;
#endif
    let g = linear_group(wid, nwg);
    if g * WG >= p.lists {
        return;
    }
    // Each invocation owns one sorted list and offers its head; the owner of the winner
    // advances (indices are unique across lists, so exactly one does).
    let list = g * WG + lid;
    var h = 0u;
    for (var r = 0u; r < p.k; r++) {
        var c = Cand(0u, NONE);
        if list < p.lists && h < p.k {
            let o = 2u * (list * p.k + h);
            c = Cand(src[o], src[o + 1u]);
        }
        let w = wg_best(c);
        if lid == 0u {
            put(g * p.k + r, w);
        }
        if w.i != NONE && c.i == w.i {
            h += 1u;
        }
    }
}

const LOCAL_MAX_K: u32 = 64u;

@compute @workgroup_size(WG)
fn topk_local(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let t = linear_group(wid, nwg) * WG + li;
    let stride = p.lists;
    if t >= stride {
        return;
    }
    var lk: array<u32, LOCAL_MAX_K>;
    var lx: array<u32, LOCAL_MAX_K>;
    for (var j = 0u; j < p.k; j++) {
        lx[j] = NONE;
    }
    let last = p.k - 1u;
    // Indices rise, so a later equal key never outranks a kept one (ties: lowest index).
    for (var idx = t; idx < p.n; idx += stride) {
        let c = Cand(key_of(src[idx]), idx);
        if better(c, Cand(lk[last], lx[last])) {
            var j = last;
            while j > 0u && better(c, Cand(lk[j - 1u], lx[j - 1u])) {
                lk[j] = lk[j - 1u];
                lx[j] = lx[j - 1u];
                j--;
            }
            lk[j] = c.key;
            lx[j] = c.i;
        }
    }
    for (var j = 0u; j < p.k; j++) {
        put(t * p.k + j, Cand(lk[j], lx[j]));
    }
}

@compute @workgroup_size(WG)
fn topk_local_merge(@builtin(local_invocation_index) li: u32) {
    if li != 0u {
        return;
    }
    // Heads of the p.lists sorted lists (at most LOCAL_MAX_K lists).
    var h: array<u32, LOCAL_MAX_K>;
    for (var r = 0u; r < p.k; r++) {
        var best = Cand(0u, NONE);
        var src_list = 0u;
        for (var l = 0u; l < p.lists; l++) {
            if h[l] < p.k {
                let o = 2u * (l * p.k + h[l]);
                let c = Cand(src[o], src[o + 1u]);
                if better(c, best) {
                    best = c;
                    src_list = l;
                }
            }
        }
        put(r, best);
        if best.i != NONE {
            h[src_list] += 1u;
        }
    }
}
