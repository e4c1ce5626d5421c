// variants: F32W F16W Q8_0 Q8_0+PAIRED Q4_0 Q4_0+PAIRED Q4_1 Q4_1+NORM Q4_1+GLU Q4_1+NORM+GLU Q8_0+PAIRED+NORM+GLU F16W+NORM Q4_0+NORM+GLU Q4_1+PAIRED+INT64 Q4_1+PAIRED+INT64+NORM+GLU Q8_0+PAIRED+INT64 Q8_0+PAIRED+INT64+NORM+GLU Q4_1+PAIRED+INT64+SUBGROUP+XBCAST Q4_1+PAIRED+INT64+NORM+GLU+SUBGROUP+XBCAST Q8_0+PAIRED+INT64+NORM+SUBGROUP+XBCAST Q4_0+SUBGROUP+XBCAST F16W+NORM+SUBGROUP+XBCAST
// variants: Q4_1+NORM+ROPE_KV Q8_0+PAIRED+NORM+ROPE_KV Q4_1+PAIRED+INT64+NORM+SUBGROUP+XBCAST+ROPE_KV
// variants-f16: Q4_1+PAIRED+INT64+NORM+SUBGROUP+XBCAST+ROPE_KV+KV_F16 Q8_0+PAIRED+NORM+ROPE_KV+KV_F16
// Matrix-vector product y[row_offset + r] (+)= sum_c W[r, c] * x[c] for one row chunk of W.
// Bindings: 0 params (uniform), 1 W (read, raw GGUF bytes as u32 words), 2 x (read, f32),
// 3 y (read_write, f32).
// Format flags: F32W, F16W, Q8_0, Q4_0, Q4_1. PAIRED (q8_0/q4_0 with an even block count per
// row): a unit is two blocks, which start 4-byte aligned; otherwise one block of either parity.
// INT64 (q4_1 or q8_0, PAIRED): W is in row groups (group_slot, src/gpu/chunked.rs) and read
// as u64 words (q8_0 units
// start at a 4- or 8-byte boundary and are realigned). CPU adapters gather per element, so
// 8-byte elements halve the gathers, and a thread's rows sit in one contiguous run.
// A unit is the span of a row one thread handles at a time (32 or 64 columns).
// TPR threads share a row group of R rows; a workgroup holds WG / TPR row groups.
// NORM: x is RMS-normalized on load, x * weight / sqrt(mean(x^2) + eps), with 4 norm weight
// (read, f32). GLU (R even): rows come in (gate, up) pairs and y[(row_offset + r) / 2] gets
// silu(gate) * up, so a SwiGLU feed-forward's gate, up and activation are one dispatch.
// XBCAST (TPR = 1, subgroups of 8 or more): x is loaded a share per lane and broadcast.
// ROPE_KV (TPR = 1, R even, NORM, W a fused [q; k; v] projection): decode's RoPE and KV store
// as the epilogue, instead of a rope_kv dispatch. Each thread holds row pairs (2j, 2j + 1),
// which interleaved RoPE rotates together: q rows go to y rotated, k rows rotated and v rows
// as they are into the caches at position step.pos (see rope_kv.wgsl). Bindings 5 rope params
// (uniform), 6 step (uniform), 7 freqs (read), 8 k cache, 9 v cache (read_write, f16 with
// KV_F16, else f32; [n_kv_heads, max_ctx, head_dim]).

struct Params {
    rows: u32,       // rows in this chunk
    row_offset: u32, // index in y of the chunk's first row
    units: u32,      // units per row
    row_words: u32,  // u32 words per row (aligned formats)
    blocks: u32,     // blocks per row (unpaired q8_0 / q4_0)
    accumulate: u32, // 1: y += W x (fused residual add); 0: y = W x
    eps: f32,        // NORM: RMSNorm epsilon
    cols4: u32,      // columns / 4
}

@group(0) @binding(0) var<uniform> p: Params;
#if INT64
@group(0) @binding(1) var<storage, read> w: array<u64>;
#else
@group(0) @binding(1) var<storage, read> w: array<u32>;
#endif
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#if NORM
@group(0) @binding(4) var<storage, read> norm_w: array<vec4<f32>>;
var<private> norm_inv: f32;
#endif

override WG: u32 = 64u;
override TPR: u32 = 64u;
override R: u32 = 2u;

const MAX_R: u32 = 64u;

// Partial sums of the reduction, r * WG + t (the host keeps WG * R within its size).
var<workgroup> red: array<f32, 2048>;

// Columns per unit / 4: the vec4s of x one unit multiplies.
#if PAIRED
const UX: u32 = 16u;
#else
const UX: u32 = 8u;
#endif

// Eight nibbles of a q4 word as floats, each left in place: byte k's nibble n comes out as
// n * 2^(8k), which x, pre-scaled by NIB_SCALE, cancels exactly (saves a shift per nibble).
// Low nibbles are elements j..j+3, high nibbles j+16..j+19. Converted through i32 (values
// below 2^28): a signed conversion is one instruction on CPUs, unsigned several.
const NIB_MASK = vec4<u32>(0xFu, 0xF00u, 0xF0000u, 0xF000000u);
const NIB_SCALE = vec4<f32>(1.0, 0.00390625, 0.0000152587890625, 0.000000059604644775390625);
fn nib_lo(q: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q) & NIB_MASK));
}
fn nib_hi(q: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q >> 4u) & NIB_MASK));
}

// Four signed bytes of a q8 word as floats.
fn i8x4(q: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// The q word i of a block's quants, given the words from the block's first word on and
// whether the block starts at an odd half-word (then the quants are word aligned).
fn qword(a: u32, b: u32, odd: bool) -> u32 {
    return select((a >> 16u) | (b << 16u), b, odd);
}

#if INT64
// The 8 bytes from a's second half-word (odd) or a itself, across into b.
fn realign(a: u64, b: u64, odd: bool) -> u64 {
    return select(a, (a >> 32u) | (b << 32u), odd);
}
#endif

// sum over 8 q8 words (one q8_0 block) of byte * x, with xs[o..o + 8].
// Products are accumulated with fma: one instruction instead of two on CPUs.
fn q8_dot(q0: u32, q1: u32, q2: u32, q3: u32, q4: u32, q5: u32, q6: u32, q7: u32, xs: ptr<function, array<vec4<f32>, 16>>, o: u32) -> f32 {
    var a = i8x4(q0) * (*xs)[o];
    a = fma(i8x4(q1), (*xs)[o + 1u], a);
    a = fma(i8x4(q2), (*xs)[o + 2u], a);
    a = fma(i8x4(q3), (*xs)[o + 3u], a);
    a = fma(i8x4(q4), (*xs)[o + 4u], a);
    a = fma(i8x4(q5), (*xs)[o + 5u], a);
    a = fma(i8x4(q6), (*xs)[o + 6u], a);
    a = fma(i8x4(q7), (*xs)[o + 7u], a);
    return a.x + a.y + a.z + a.w;
}

// sum over 4 nibble words (one q4 block) of nibble * x; xs holds the block's 8 x vec4s,
// scaled by NIB_SCALE.
fn q4_dot(q0: u32, q1: u32, q2: u32, q3: u32, xs: ptr<function, array<vec4<f32>, 16>>, o: u32) -> f32 {
    var a = nib_lo(q0) * (*xs)[o];
    a = fma(nib_hi(q0), (*xs)[o + 4u], a);
    a = fma(nib_lo(q1), (*xs)[o + 1u], a);
    a = fma(nib_hi(q1), (*xs)[o + 5u], a);
    a = fma(nib_lo(q2), (*xs)[o + 2u], a);
    a = fma(nib_hi(q2), (*xs)[o + 6u], a);
    a = fma(nib_lo(q3), (*xs)[o + 3u], a);
    a = fma(nib_hi(q3), (*xs)[o + 7u], a);
    return a.x + a.y + a.z + a.w;
}

// Dot of one row's unit u with the x vec4s in xs; xsum holds the x sums of the unit's blocks.
fn unit_dot(row: u32, u: u32, xs: ptr<function, array<vec4<f32>, 16>>, xsum: vec2<f32>) -> f32 {
#if F32W
    let base = row * p.row_words + u * 32u;
    var a = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let b = base + i * 4u;
        a += bitcast<vec4<f32>>(vec4<u32>(w[b], w[b + 1u], w[b + 2u], w[b + 3u])) * (*xs)[i];
    }
    return a.x + a.y + a.z + a.w;
#endif
#if F16W
    let base = row * p.row_words + u * 16u;
    var a = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        let b = base + i * 2u;
        a += vec4<f32>(unpack2x16float(w[b]), unpack2x16float(w[b + 1u])) * (*xs)[i];
    }
    return a.x + a.y + a.z + a.w;
#endif
#if Q4_1
#if INT64
    // Two blocks in 5 u64 words: dm0 q0 | q0 q0 | q0 dm1 | q1 q1 | q1 q1 (low half first).
    let base = group_slot(row, u, p.units) * 5u;
    let v0 = w[base];
    let v1 = w[base + 1u];
    let v2 = w[base + 2u];
    let v3 = w[base + 3u];
    let v4 = w[base + 4u];
    let dm0 = unpack2x16float(u32(v0));
    let dm1 = unpack2x16float(u32(v2 >> 32u));
    let s0 = q4_dot(u32(v0 >> 32u), u32(v1), u32(v1 >> 32u), u32(v2), xs, 0u);
    let s1 = q4_dot(u32(v3), u32(v3 >> 32u), u32(v4), u32(v4 >> 32u), xs, 8u);
    return dm0.x * s0 + dm0.y * xsum.x + dm1.x * s1 + dm1.y * xsum.y;
#else
    let base = row * p.row_words + u * 5u;
    let dm = unpack2x16float(w[base]);
    let s = q4_dot(w[base + 1u], w[base + 2u], w[base + 3u], w[base + 4u], xs, 0u);
    return dm.x * s + dm.y * xsum.x;
#endif
#endif
#if Q4_0
#if PAIRED
    // Two blocks in 9 words: d0 | q0 (shifted by a half-word) | d1 | q1 (aligned).
    let base = row * p.row_words + u * 9u;
    let w0 = w[base];
    let w1 = w[base + 1u];
    let w2 = w[base + 2u];
    let w3 = w[base + 3u];
    let w4 = w[base + 4u];
    let s0 = q4_dot((w0 >> 16u) | (w1 << 16u), (w1 >> 16u) | (w2 << 16u), (w2 >> 16u) | (w3 << 16u), (w3 >> 16u) | (w4 << 16u), xs, 0u);
    let s1 = q4_dot(w[base + 5u], w[base + 6u], w[base + 7u], w[base + 8u], xs, 8u);
    let d0 = unpack2x16float(w0).x;
    let d1 = unpack2x16float(w4).y;
    return d0 * (s0 - 8.0 * xsum.x) + d1 * (s1 - 8.0 * xsum.y);
#else
    let off = (row * p.blocks + u) * 18u;
    let b = off >> 2u;
    let odd = (off & 2u) != 0u;
    let w0 = w[b];
    let w1 = w[b + 1u];
    let w2 = w[b + 2u];
    let w3 = w[b + 3u];
    let w4 = w[b + 4u];
    let s = q4_dot(qword(w0, w1, odd), qword(w1, w2, odd), qword(w2, w3, odd), qword(w3, w4, odd), xs, 0u);
    let dd = unpack2x16float(w0);
    return select(dd.x, dd.y, odd) * (s - 8.0 * xsum.x);
#endif
#endif
#if Q8_0
#if INT64
    // Two blocks in 17 u32 words (as below), starting at a 4- or 8-byte boundary: 9 u64 loads
    // from the 8-byte boundary at or below, realigned to the unit's first word (t_k holds
    // words 2k and 2k + 1 of the unit).
    let start = group_slot(row, u, p.units) * 17u;
    let b = start >> 1u;
    let odd = (start & 1u) != 0u;
    let v0 = w[b];
    let v1 = w[b + 1u];
    let v2 = w[b + 2u];
    let v3 = w[b + 3u];
    let v4 = w[b + 4u];
    let v5 = w[b + 5u];
    let v6 = w[b + 6u];
    let v7 = w[b + 7u];
    let v8 = w[b + 8u];
    let t0 = realign(v0, v1, odd);
    let t1 = realign(v1, v2, odd);
    let t2 = realign(v2, v3, odd);
    let t3 = realign(v3, v4, odd);
    let t4 = realign(v4, v5, odd);
    let t5 = realign(v5, v6, odd);
    let t6 = realign(v6, v7, odd);
    let t7 = realign(v7, v8, odd);
    let w16 = u32(select(v8, v8 >> 32u, odd));
    // Block 0's quants sit a half-word into words 0..8; block 1's are words 9..16.
    let s0 = q8_dot(u32(t0 >> 16u), u32((t0 >> 48u) | (t1 << 16u)), u32(t1 >> 16u), u32((t1 >> 48u) | (t2 << 16u)), u32(t2 >> 16u), u32((t2 >> 48u) | (t3 << 16u)), u32(t3 >> 16u), u32((t3 >> 48u) | (t4 << 16u)), xs, 0u);
    let s1 = q8_dot(u32(t4 >> 32u), u32(t5), u32(t5 >> 32u), u32(t6), u32(t6 >> 32u), u32(t7), u32(t7 >> 32u), w16, xs, 8u);
    return unpack2x16float(u32(t0)).x * s0 + unpack2x16float(u32(t4)).y * s1;
#else
#if PAIRED
    // Two blocks in 17 words: d0 | q0 (shifted by a half-word) | d1 | q1 (aligned).
    let base = row * p.row_words + u * 17u;
    var a = vec4<f32>(0.0);
    var prev = w[base];
    let d0 = unpack2x16float(prev).x;
    for (var i = 0u; i < 8u; i++) {
        let next = w[base + 1u + i];
        a += i8x4((prev >> 16u) | (next << 16u)) * (*xs)[i];
        prev = next;
    }
    let d1 = unpack2x16float(prev).y;
    var c = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        c += i8x4(w[base + 9u + i]) * (*xs)[8u + i];
    }
    return d0 * (a.x + a.y + a.z + a.w) + d1 * (c.x + c.y + c.z + c.w);
#else
    let off = (row * p.blocks + u) * 34u;
    let b = off >> 2u;
    let odd = (off & 2u) != 0u;
    var a = vec4<f32>(0.0);
    var prev = w[b];
    let dd = unpack2x16float(prev);
    for (var i = 0u; i < 8u; i++) {
        let next = w[b + 1u + i];
        a += i8x4(qword(prev, next, odd)) * (*xs)[i];
        prev = next;
    }
    return select(dd.x, dd.y, odd) * (a.x + a.y + a.z + a.w);
#endif
#endif
#endif
}

// Sum of the four lanes of each of the 8 vec4s from xs[o].
fn xs_sum(xs: ptr<function, array<vec4<f32>, 16>>, o: u32) -> f32 {
    let s = (*xs)[o] + (*xs)[o + 1u] + (*xs)[o + 2u] + (*xs)[o + 3u] + (*xs)[o + 4u] + (*xs)[o + 5u] + (*xs)[o + 6u] + (*xs)[o + 7u];
    return s.x + s.y + s.z + s.w;
}

fn scale_for_nibbles(xs: ptr<function, array<vec4<f32>, 16>>) {
    for (var i = 0u; i < UX; i++) {
        (*xs)[i] *= NIB_SCALE;
    }
}

// x vec4 i (RMS-normalized with NORM; `norm_inv` is 1 / rms).
fn x_at(i: u32) -> vec4<f32> {
#if NORM
    return x[i] * norm_w[i] * norm_inv;
#else
    return x[i];
#endif
}

#if XBCAST
// xs[o..o + 8] = v of lanes 0..7, by broadcast.
fn spread8(xs: ptr<function, array<vec4<f32>, 16>>, o: u32, v: vec4<f32>) {
    (*xs)[o] = subgroupBroadcast(v, 0u);
    (*xs)[o + 1u] = subgroupBroadcast(v, 1u);
    (*xs)[o + 2u] = subgroupBroadcast(v, 2u);
    (*xs)[o + 3u] = subgroupBroadcast(v, 3u);
    (*xs)[o + 4u] = subgroupBroadcast(v, 4u);
    (*xs)[o + 5u] = subgroupBroadcast(v, 5u);
    (*xs)[o + 6u] = subgroupBroadcast(v, 6u);
    (*xs)[o + 7u] = subgroupBroadcast(v, 7u);
}

// xs[0..UX] = x vec4s from `base`: lane k of each 8 loads vec4s k (and 8 + k when UX = 16),
// then every vec4 is broadcast from the lane that has it.
fn x_shared(xs: ptr<function, array<vec4<f32>, 16>>, base: u32, k: u32) {
    spread8(xs, 0u, x_at(base + k));
#if PAIRED
    spread8(xs, 8u, x_at(base + 8u + k));
#endif
}
#endif

fn put(i: u32, v: f32) {
    if p.accumulate != 0u {
        y[i] += v;
    } else {
        y[i] = v;
    }
}

fn store(row: u32, v: f32) {
    if row < p.rows {
        put(p.row_offset + row, v);
    }
}

// GLU: the pair (gate, up) of rows (row, row + 1), row even.
fn store_pair(row: u32, gate: f32, up: f32) {
    if row < p.rows {
        put((p.row_offset + row) / 2u, gate / (1.0 + exp(-gate)) * up);
    }
}

#if GLU
var<workgroup> pair_sums: array<f32, MAX_R>;
#endif

#if ROPE_KV
struct RopeParams {
    head_dim: u32,
    half_rot: u32, // rotated pairs per head
    q_rows: u32,   // n_heads * head_dim
    k_rows: u32,   // n_kv_heads * head_dim
    max_ctx: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
#if KV_F16
alias kv2 = vec2<f16>;
#else
alias kv2 = vec2<f32>;
#endif
@group(0) @binding(5) var<uniform> rp: RopeParams;
@group(0) @binding(6) var<uniform> step: StepParams;
@group(0) @binding(7) var<storage, read> freqs: array<vec2<f32>>;
@group(0) @binding(8) var<storage, read_write> kc: array<kv2>;
@group(0) @binding(9) var<storage, read_write> vc: array<kv2>;

// Rows (row, row + 1) of the [q; k; v] output, row even: rotated when they are a rotated pair
// of q or k, then stored to y (q) or the caches (k, v).
fn store_rope_pair(row: u32, a: f32, b: f32) {
    let pos = step.pos;
    if row >= p.rows || pos >= rp.max_ctx {
        return;
    }
    let g = p.row_offset + row;
    let d = g % rp.head_dim;
    let qk = rp.q_rows + rp.k_rows;
    var v = vec2<f32>(a, b);
    if g < qk && d / 2u < rp.half_rot {
        let cs = rope_cs(freqs[d / 2u], f32(pos));
        v = vec2<f32>(a * cs.x - b * cs.y, a * cs.y + b * cs.x);
    }
    if g < rp.q_rows {
        y[g] = v.x;
        y[g + 1u] = v.y;
    } else if g < qk {
        let kh = (g - rp.q_rows) / rp.head_dim;
        kc[((kh * rp.max_ctx + pos) * rp.head_dim + d) / 2u] = kv2(v);
    } else {
        let vh = (g - qk) / rp.head_dim;
        vc[((vh * rp.max_ctx + pos) * rp.head_dim + d) / 2u] = kv2(v);
    }
}
#endif

@compute @workgroup_size(WG)
fn matvec(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
#if SUBGROUP
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
    @builtin(subgroup_size) sg_size: u32,
#endif
) {
    let slot = t / TPR;
    // (t & (TPR - 1)) folds to 0 for TPR = 1, so x loads are seen as uniform across threads.
    let lane = t & (TPR - 1u);
    let first = (linear_group(wid, nwg) * (WG / TPR) + slot) * R;
    let last = p.rows - 1u;
    var acc: array<f32, MAX_R>;
    var xs: array<vec4<f32>, 16>;
#if NORM
#if XBCAST
    // Sum of squares: each subgroup covers all of x, so no barrier is needed. A subgroup
    // larger than the workgroup has only WG invocations.
    var part = vec4<f32>(0.0);
    for (var i = sg_lane; i < p.cols4; i += min(sg_size, WG)) {
        let v = x[i];
        part += v * v;
    }
    let ss = subgroupAdd(part.x + part.y + part.z + part.w);
#else
    // Sum of squares: strided over the workgroup, then every thread adds the WG partials.
    var part = vec4<f32>(0.0);
    for (var i = t; i < p.cols4; i += WG) {
        let v = x[i];
        part += v * v;
    }
    red[t] = part.x + part.y + part.z + part.w;
    workgroupBarrier();
    var ss = 0.0;
    for (var i = 0u; i < WG; i++) {
        ss += red[i];
    }
    workgroupBarrier();
#endif
    norm_inv = 1.0 / sqrt(ss / f32(p.cols4 * 4u) + p.eps);
#endif
#if XBCAST
    // TPR = 1, subgroups of 8 or more: every lane needs the same x, so each lane loads a share
    // and the rest comes by broadcast (on CPU adapters a load costs a guarded access per lane).
    for (var u = 0u; u < p.units; u++) {
        x_shared(&xs, u * UX, sg_lane & 7u);
#else
    for (var u = lane; u < p.units; u += TPR) {
        for (var i = 0u; i < UX; i++) {
            xs[i] = x_at(u * UX + i);
        }
#endif
        var xsum = vec2<f32>(0.0);
#if Q4_0
        xsum = vec2<f32>(xs_sum(&xs, 0u), xs_sum(&xs, 8u));
        scale_for_nibbles(&xs);
#endif
#if Q4_1
        xsum = vec2<f32>(xs_sum(&xs, 0u), xs_sum(&xs, 8u));
        scale_for_nibbles(&xs);
#endif
        for (var r = 0u; r < R; r++) {
            acc[r] += unit_dot(min(first + r, last), u, &xs, xsum);
        }
    }

    if TPR == 1u {
#if ROPE_KV
        for (var r = 0u; r < R; r += 2u) {
            store_rope_pair(first + r, acc[r], acc[r + 1u]);
        }
        return;
#endif
#if GLU
        for (var r = 0u; r < R; r += 2u) {
            store_pair(first + r, acc[r], acc[r + 1u]);
        }
#else
        for (var r = 0u; r < R; r++) {
            store(first + r, acc[r]);
        }
#endif
        return;
    }
#if SUBGROUP
    if TPR == WG {
        // One row group per workgroup: reduce each subgroup, then the subgroups' partials.
        for (var r = 0u; r < R; r++) {
            let s = subgroupAdd(acc[r]);
            if sg_lane == 0u {
                red[r * WG + sg_id] = s;
            }
        }
        workgroupBarrier();
        if t < R {
            var s = 0.0;
            for (var i = 0u; i < sg_count; i++) {
                s += red[t * WG + i];
            }
#if GLU
            pair_sums[t] = s;
#else
            store(first + t, s);
#endif
        }
#if GLU
        workgroupBarrier();
        if t < R / 2u {
            store_pair(first + 2u * t, pair_sums[2u * t], pair_sums[2u * t + 1u]);
        }
#endif
        return;
    }
#endif
    // Workgroup-shared tree within each row group's TPR threads (TPR a power of two).
    for (var r = 0u; r < R; r++) {
        red[r * WG + t] = acc[r];
    }
    workgroupBarrier();
    for (var s = TPR / 2u; s > 0u; s >>= 1u) {
        if lane < s {
            for (var r = 0u; r < R; r++) {
                red[r * WG + t] += red[r * WG + t + s];
            }
        }
        workgroupBarrier();
    }
#if GLU
    for (var r = 2u * lane; r < R; r += 2u * TPR) {
        store_pair(first + r, red[r * WG + slot * TPR], red[(r + 1u) * WG + slot * TPR]);
    }
#else
    for (var r = lane; r < R; r += TPR) {
        store(first + r, red[r * WG + slot * TPR]);
    }
#endif
}
