// variants: KV_STORE DECODE DECODE+SPLIT MERGE PREFILL LANES+SUBGROUP LANES+SPLIT+SUBGROUP
// variants-f16: KV_STORE+KV_F16 DECODE+KV_F16 DECODE+SPLIT+KV_F16 PREFILL+KV_F16 LANES+SUBGROUP+KV_F16
// Attention over a KV cache: kv_store, decode (single pass or split over the sequence), the
// split merge, and causal prefill. One section per entry point, picked by a flag:
//   KV_STORE  0 step, 1 params, 2 k_new (read), 3 v_new (read), 4 k cache (rw), 5 v cache (rw)
//   DECODE    0 step, 1 params, 2 q, 3 k cache, 4 v cache, 5 out (rw)
//             with SPLIT: 5 partial acc (rw), 6 partial (max, sum) (rw)
//   MERGE     0 step, 1 params, 2 partial acc, 3 partial (max, sum), 4 out (rw)
//   PREFILL   0 step, 1 params, 2 q, 3 k cache, 4 v cache, 5 out (rw)
// Caches are [n_kv_heads, max_ctx, head_dim] of f16 (KV_F16) or f32; everything else is f32.
//   LANES     decode, and prefill a token per workgroup, with one subgroup per workgroup (WG =
//             the subgroup size), bindings as DECODE: the lanes split the head dimension and
//             step through the keys together.
//             No barriers, shared memory or indexed arrays, which suits CPU adapters, where a
//             barrier switches between SIMD batches and indexed arrays live in memory.
// All arrays are read as vec4 (head_dim is a multiple of 4). Arithmetic is f32 throughout.


struct Params {
    n_heads: u32,
    group: u32, // query heads per kv head
    n_kv_heads: u32,
    max_ctx: u32,
    scale: f32,
    splits: u32,
    n_tokens: u32, // token capacity of the prepared q / new-row buffers
    hd4: u32, // head_dim / 4
    bq: u32, // prefill: query rows per workgroup
    bk: u32, // prefill: keys per tile
    nv: u32, // prefill: output vec4s per thread
    q_stride4: u32, // prefill: vec4s per token row of q
}

@group(0) @binding(0) var<uniform> step: StepParams;
@group(0) @binding(1) var<uniform> p: Params;

#if KV_F16
alias kv4 = vec4<f16>;
#else
alias kv4 = vec4<f32>;
#endif

override WG: u32 = 64u;

// Masked / empty: finite, so max and exp never see inf - inf.
const NEG: f32 = -1.0e30;

#if KV_STORE
@group(0) @binding(2) var<storage, read> k_new: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v_new: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> kc: array<kv4>;
@group(0) @binding(5) var<storage, read_write> vc: array<kv4>;

// One thread per 4 values of [n_tokens, n_kv_heads, head_dim]; rows land at step.pos + token.
@compute @workgroup_size(WG)
fn kv_store(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = linear_group(wid, nwg) * WG + lid.x;
    let hd4 = p.hd4;
    let per_token = p.n_kv_heads * hd4;
    let t = i / per_token;
    let pos = step.pos + t;
    if t >= min(step.n_tokens, p.n_tokens) || pos >= p.max_ctx { return; }
    let rem = i % per_token;
    let dst = ((rem / hd4) * p.max_ctx + pos) * hd4 + rem % hd4;
    kc[dst] = kv4(k_new[i]);
    vc[dst] = kv4(v_new[i]);
}
#endif

#if DECODE
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kc: array<kv4>;
@group(0) @binding(4) var<storage, read> vc: array<kv4>;
#if SPLIT
@group(0) @binding(5) var<storage, read_write> part_acc: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> part_ml: array<vec2<f32>>;
#else
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
#endif

const MAX_WG: u32 = 256u;
const MAX_HD4: u32 = 64u;

var<workgroup> q_sh: array<vec4<f32>, MAX_HD4>;
var<workgroup> p_sh: array<f32, MAX_WG>;
var<workgroup> red: array<f32, MAX_WG>;
var<workgroup> acc_sh: array<vec4<f32>, MAX_WG>;

var<private> g_lid: u32;
#if SUBGROUP
var<private> g_lane: u32;
var<private> g_sg: u32;
var<private> g_nsg: u32;

fn wg_max(x: f32) -> f32 {
    let m = subgroupMax(x);
    if g_lane == 0u { red[g_sg] = m; }
    workgroupBarrier();
    var r = red[0];
    for (var i = 1u; i < g_nsg; i++) { r = max(r, red[i]); }
    workgroupBarrier();
    return r;
}

fn wg_sum(x: f32) -> f32 {
    let s = subgroupAdd(x);
    if g_lane == 0u { red[g_sg] = s; }
    workgroupBarrier();
    var r = 0.0;
    for (var i = 0u; i < g_nsg; i++) { r += red[i]; }
    workgroupBarrier();
    return r;
}
#else
// Shared-memory trees; WG is a power of two.
fn wg_max(x: f32) -> f32 {
    red[g_lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if g_lid < s { red[g_lid] = max(red[g_lid], red[g_lid + s]); }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_sum(x: f32) -> f32 {
    red[g_lid] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if g_lid < s { red[g_lid] += red[g_lid + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
#endif

// Workgroup (head, split). Keys go in tiles of WG: thread i scores key j0 + i (full dot with
// q), then WG / hd4 rows of hd4 = head_dim / 4 threads accumulate p * V with coalesced vec4 reads.
// Online softmax: running max m (same in every thread), per-thread partial sums rescaled alike.
@compute @workgroup_size(WG)
fn decode(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if SUBGROUP
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) nsg: u32,
#endif
) {
    g_lid = lid;
#if SUBGROUP
    g_lane = lane;
    g_sg = sg;
    g_nsg = nsg;
#endif
    let h = wid.x;
    let s = wid.y;
    let hd4 = p.hd4;
    let seq = min(step.seq_len, p.max_ctx);
    let chunk = (seq + p.splits - 1u) / p.splits;
    let start = min(s * chunk, seq);
    let end = min(start + chunk, seq);
    for (var c = lid; c < hd4; c += WG) {
        q_sh[c] = q[h * hd4 + c] * p.scale;
    }
    workgroupBarrier();

    let base = (h / p.group) * p.max_ctx;
    let rows = WG / hd4;
    let r = lid / hd4;
    let c = lid % hd4;
    var m = NEG;
    var l = 0.0;
    var acc = vec4<f32>(0.0);
    for (var j0 = start; j0 < end; j0 += WG) {
        let j = j0 + lid;
        var sc = NEG;
        if j < end {
            let row = (base + j) * hd4;
            var d = vec4<f32>(0.0);
            for (var i = 0u; i < hd4; i++) {
                d += q_sh[i] * vec4<f32>(kc[row + i]);
            }
            sc = d.x + d.y + d.z + d.w;
        }
        let m_new = max(m, wg_max(sc));
        let alpha = exp(m - m_new);
        let pj = select(0.0, exp(sc - m_new), j < end);
        p_sh[lid] = pj;
        l = l * alpha + pj;
        acc *= alpha;
        m = m_new;
        workgroupBarrier();
        if r < rows {
            let n = min(WG, end - j0);
            for (var jj = r; jj < n; jj += rows) {
                acc += p_sh[jj] * vec4<f32>(vc[(base + j0 + jj) * hd4 + c]);
            }
        }
        workgroupBarrier();
    }

    let total = wg_sum(l);
    acc_sh[lid] = acc;
    workgroupBarrier();
    if lid < hd4 {
        var a = vec4<f32>(0.0);
        for (var rr = 0u; rr < rows; rr++) {
            a += acc_sh[rr * hd4 + lid];
        }
#if SPLIT
        let slot = h * p.splits + s;
        part_acc[slot * hd4 + lid] = a;
        if lid == 0u { part_ml[slot] = vec2<f32>(m, total); }
#else
        out[h * hd4 + lid] = select(vec4<f32>(0.0), a / total, total > 0.0);
#endif
    }
}
#endif

#if LANES
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
#if KV_F16
// f16 rows read as u32 pairs: one load per two halves (CPU adapters load lane by lane).
@group(0) @binding(3) var<storage, read> kc: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> vc: array<vec2<u32>>;
#else
@group(0) @binding(3) var<storage, read> kc: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> vc: array<vec4<f32>>;
#endif
#if SPLIT
@group(0) @binding(5) var<storage, read_write> part_acc: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> part_ml: array<vec2<f32>>;
#else
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
#endif

// vec4s of the head each lane holds (1..=4): lane l has vec4s l, l + WG, l + 2 WG, l + 3 WG.
override DPL: u32 = 2u;

#if KV_F16
fn k_at(i: u32) -> vec4<f32> {
    let w = kc[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
fn v_at(i: u32) -> vec4<f32> {
    let w = vc[i];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
#else
fn k_at(i: u32) -> vec4<f32> {
    return kc[i];
}
fn v_at(i: u32) -> vec4<f32> {
    return vc[i];
}
#endif

// Workgroup (head, split, token), one subgroup: the lanes split the head dimension and walk
// the split's keys together, so every lane's state (its q and output slices, the running max
// and sum) stays in registers. A score is one subgroupAdd of the lanes' partial dots.
// Token t of the batch (prefill; decode has t = 0 only) sits at step.pos + t, reads q from
// row t (p.q_stride4 vec4s a row) and sees keys 0..=step.pos + t.
@compute @workgroup_size(WG)
fn decode_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let s = wid.y;
    let t = wid.z;
    if t >= min(step.n_tokens, p.n_tokens) {
        return;
    }
    let hd4 = p.hd4;
    let seq = min(step.pos + t + 1u, p.max_ctx);
    let chunk = (seq + p.splits - 1u) / p.splits;
    let start = min(s * chunk, seq);
    let end = min(start + chunk, seq);
    let last = hd4 - 1u;
    let i0 = lid;
    let i1 = lid + WG;
    let i2 = lid + 2u * WG;
    let i3 = lid + 3u * WG;
    // Slots past the head read its last vec4 and weigh it by a zero q.
    let c0 = min(i0, last);
    let c1 = min(i1, last);
    let c2 = min(i2, last);
    let c3 = min(i3, last);
    let qb = t * p.q_stride4 + h * hd4;
    let q0 = select(vec4<f32>(0.0), q[qb + c0] * p.scale, i0 < hd4);
    let q1 = select(vec4<f32>(0.0), q[qb + c1] * p.scale, i1 < hd4);
    let q2 = select(vec4<f32>(0.0), q[qb + c2] * p.scale, i2 < hd4);
    let q3 = select(vec4<f32>(0.0), q[qb + c3] * p.scale, i3 < hd4);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var m = NEG;
    var l = 0.0;
    let base = (h / p.group) * p.max_ctx;
    for (var j = start; j < end; j++) {
        let row = (base + j) * hd4;
        var d = dot(q0, k_at(row + c0));
        if DPL > 1u {
            d += dot(q1, k_at(row + c1));
        }
        if DPL > 2u {
            d += dot(q2, k_at(row + c2));
        }
        if DPL > 3u {
            d += dot(q3, k_at(row + c3));
        }
        let sc = subgroupAdd(d);
        let m_new = max(m, sc);
        let alpha = exp(m - m_new);
        let pj = exp(sc - m_new);
        l = l * alpha + pj;
        a0 = a0 * alpha + pj * v_at(row + c0);
        if DPL > 1u {
            a1 = a1 * alpha + pj * v_at(row + c1);
        }
        if DPL > 2u {
            a2 = a2 * alpha + pj * v_at(row + c2);
        }
        if DPL > 3u {
            a3 = a3 * alpha + pj * v_at(row + c3);
        }
        m = m_new;
    }
#if SPLIT
    // Unnormalized, relative to this split's max; the merge rescales.
    let ob = (h * p.splits + s) * hd4;
    let inv = 1.0;
    if lid == 0u {
        part_ml[h * p.splits + s] = vec2<f32>(m, l);
    }
#else
    let ob = (t * p.n_heads + h) * hd4;
    let inv = select(0.0, 1.0 / l, l > 0.0);
#endif
    lane_out(ob, i0, hd4, a0 * inv);
    if DPL > 1u {
        lane_out(ob, i1, hd4, a1 * inv);
    }
    if DPL > 2u {
        lane_out(ob, i2, hd4, a2 * inv);
    }
    if DPL > 3u {
        lane_out(ob, i3, hd4, a3 * inv);
    }
}

fn lane_out(ob: u32, i: u32, hd4: u32, v: vec4<f32>) {
    if i < hd4 {
#if SPLIT
        part_acc[ob + i] = v;
#else
        out[ob + i] = v;
#endif
    }
}
#endif

#if MERGE
@group(0) @binding(2) var<storage, read> part_acc: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> part_ml: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

// Workgroup per head: rescale each split's partial to the global max and normalize.
@compute @workgroup_size(WG)
fn decode_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let hd4 = p.hd4;
    let first = h * p.splits;
    var mx = NEG;
    for (var s = 0u; s < p.splits; s++) {
        mx = max(mx, part_ml[first + s].x);
    }
    for (var c = lid; c < hd4; c += WG) {
        var a = vec4<f32>(0.0);
        var l = 0.0;
        for (var s = 0u; s < p.splits; s++) {
            let ml = part_ml[first + s];
            // Empty splits have sum 0 and contribute nothing.
            let w = select(0.0, exp(ml.x - mx), ml.y > 0.0);
            a += w * part_acc[(first + s) * hd4 + c];
            l += w * ml.y;
        }
        out[h * hd4 + c] = select(vec4<f32>(0.0), a / l, l > 0.0);
    }
}
#endif

#if PREFILL
@group(0) @binding(2) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> kc: array<kv4>;
@group(0) @binding(4) var<storage, read> vc: array<kv4>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

// Tiles (p.bq query rows, p.bk keys, p.nv output vec4s per thread) are chosen in Rust to fit
// the const-sized arrays below: bq * head_dim <= 1024, bk * head_dim <= 1024, bq * bk <= 512.
const MAX_BQ: u32 = 128u;
const MAX_NV: u32 = 4u;

var<workgroup> q_t: array<vec4<f32>, 256>;
var<workgroup> k_t: array<vec4<f32>, 256>;
var<workgroup> v_t: array<vec4<f32>, 256>;
var<workgroup> p_t: array<f32, 512>;
var<workgroup> m_t: array<f32, MAX_BQ>;
var<workgroup> l_t: array<f32, MAX_BQ>;
var<workgroup> alpha_t: array<f32, MAX_BQ>;

// Workgroup (row block, kv head). Rows are (token, query head of this kv head) pairs, head
// fastest, so the heads sharing a kv head share its K/V tiles. Token t sits at step.pos + t
// and sees keys 0..=step.pos + t. Each row's output is owned by WG / bq threads.
@compute @workgroup_size(WG)
fn prefill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let kvh = wid.y;
    let hd4 = p.hd4;
    let bq = p.bq;
    let bk = p.bk;
    let g = p.group;
    let n_rows = min(step.n_tokens, p.n_tokens) * g;
    let r0 = wid.x * bq;
    if r0 >= n_rows { return; }
    let last_token = (min(r0 + bq, n_rows) - 1u) / g;
    let kv_end = min(step.pos + last_token + 1u, p.max_ctx);

    for (var e = lid; e < bq * hd4; e += WG) {
        let row = r0 + e / hd4;
        var x = vec4<f32>(0.0);
        if row < n_rows {
            let head = kvh * g + row % g;
            x = q[(row / g) * p.q_stride4 + head * hd4 + e % hd4] * p.scale;
        }
        q_t[e] = x;
    }
    if lid < bq {
        m_t[lid] = NEG;
        l_t[lid] = 0.0;
    }

    let tpr = WG / bq;
    let my_r = lid / tpr;
    let my_t = lid % tpr;
    let base = kvh * p.max_ctx;
    var acc: array<vec4<f32>, MAX_NV>;
    for (var k = 0u; k < MAX_NV; k++) { acc[k] = vec4<f32>(0.0); }

    for (var j0 = 0u; j0 < kv_end; j0 += bk) {
        // Earlier readers of the tiles (or the q / stats initialization) are done.
        workgroupBarrier();
        for (var e = lid; e < bk * hd4; e += WG) {
            let key = j0 + e / hd4;
            var kk = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if key < kv_end {
                let idx = (base + key) * hd4 + e % hd4;
                kk = vec4<f32>(kc[idx]);
                vv = vec4<f32>(vc[idx]);
            }
            k_t[e] = kk;
            v_t[e] = vv;
        }
        workgroupBarrier();
        for (var e = lid; e < bq * bk; e += WG) {
            let r = e / bk;
            let j = e % bk;
            let row = r0 + r;
            let key = j0 + j;
            var sc = NEG;
            if row < n_rows && key < kv_end && key <= step.pos + row / g {
                var d = vec4<f32>(0.0);
                for (var i = 0u; i < hd4; i++) {
                    d += q_t[r * hd4 + i] * k_t[j * hd4 + i];
                }
                sc = d.x + d.y + d.z + d.w;
            }
            p_t[e] = sc;
        }
        workgroupBarrier();
        if lid < bq {
            let m_old = m_t[lid];
            var mx = m_old;
            for (var j = 0u; j < bk; j++) { mx = max(mx, p_t[lid * bk + j]); }
            var sum = 0.0;
            for (var j = 0u; j < bk; j++) {
                let sc = p_t[lid * bk + j];
                let e = select(0.0, exp(sc - mx), sc > NEG);
                p_t[lid * bk + j] = e;
                sum += e;
            }
            let a = exp(m_old - mx);
            alpha_t[lid] = a;
            l_t[lid] = l_t[lid] * a + sum;
            m_t[lid] = mx;
        }
        workgroupBarrier();
        let a = alpha_t[my_r];
        for (var k = 0u; k < p.nv; k++) {
            let c = my_t + k * tpr;
            if c < hd4 {
                var x = acc[k] * a;
                for (var j = 0u; j < bk; j++) {
                    x += p_t[my_r * bk + j] * v_t[j * hd4 + c];
                }
                acc[k] = x;
            }
        }
    }

    let row = r0 + my_r;
    if row < n_rows {
        let l = l_t[my_r];
        let o = ((row / g) * p.n_heads + kvh * g + row % g) * hd4;
        for (var k = 0u; k < p.nv; k++) {
            let c = my_t + k * tpr;
            if c < hd4 {
                out[o + c] = select(vec4<f32>(0.0), acc[k] / l, l > 0.0);
            }
        }
    }
}
#endif
