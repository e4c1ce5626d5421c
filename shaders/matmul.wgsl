// Tiled matmul: C[M, N] (+)= A[M, K] · W[N, K]^T, one dispatch per row chunk of W.
// W (GGUF layout, one chunk of rows) is dequantized while its tile loads into workgroup memory.
// Bindings: 0 params (uniform), 1 a (read), 2 w chunk (read), 3 c (read_write).
// Flags: A_F16, C_F16; one of W_F32 / W_F16 / Q8_0 / Q4_0 / Q4_1;
//   TM8: 8 rows per thread (else 4); TN2: 2 columns per thread (else 4);
//   SG_A: a subgroup loads its TM A rows once (one per lane) and broadcasts them: cheap on CPU
//         adapters, which run every lane-varying load one lane at a time; needs SUBGROUP;
//   TILE_F16: tiles hold f16 (8 per vec4<u32>): half the workgroup memory and loads;
//   F16_MATH: f16 products in 4-term sums added to f32 accumulators; needs F16 and TILE_F16.
// Tiles are vec4<u32> entries along K: 4 f32 bit patterns, or 8 f16 with TILE_F16. Entry u of
// row r sits at ta[u * BM + r] (A) and tw[u * BN + c] (W), so lanes read adjacent entries.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // First output column of this chunk, and the chunk's row count.
    n_off: u32,
    n_rows: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if A_F16
#if F16
@group(0) @binding(1) var<storage, read> a: array<f16>;
#else
@group(0) @binding(1) var<storage, read> a: array<u32>;
#endif
#else
@group(0) @binding(1) var<storage, read> a: array<f32>;
#endif
#if W_F32
@group(0) @binding(2) var<storage, read> w: array<f32>;
#else
#if W_F16
#if F16
@group(0) @binding(2) var<storage, read> w: array<f16>;
#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
#endif
#else
@group(0) @binding(2) var<storage, read> w: array<u32>;
#endif
#endif
#if C_F16
@group(0) @binding(3) var<storage, read_write> c: array<f16>;
#else
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
#endif

// Threads along N and M (WG = WG_N * WG_M) and the K step (32 or 64);
// BM = WG_M * TM rows and BN = WG_N * TN columns per workgroup.
override WG: u32 = 64u;
override WG_N: u32 = 8u;
override WG_M: u32 = 8u;
override BK: u32 = 32u;

#if TM8
const TM: u32 = 8u;
#else
const TM: u32 = 4u;
#endif
#if TN2
const TN: u32 = 2u;
alias Vn = vec2<f32>;
#else
const TN: u32 = 4u;
alias Vn = vec4<f32>;
#endif
#if TILE_F16
// K values per tile entry.
const KU: u32 = 8u;
#else
const KU: u32 = 4u;
#endif

// Entries per operand tile (8 KiB each); the host keeps BM * BK / KU and BN * BK / KU within.
const TILE: u32 = 512u;
var<workgroup> ta: array<vec4<u32>, TILE>;
var<workgroup> tw: array<vec4<u32>, TILE>;

// ---- Tile entries: 8 values along K become one (f16) or two (f32) entries.
fn put8(is_w: bool, u: u32, stride: u32, idx: u32, lo: vec4<f32>, hi: vec4<f32>) {
#if TILE_F16
    let e = vec4<u32>(pack2x16float(lo.xy), pack2x16float(lo.zw), pack2x16float(hi.xy), pack2x16float(hi.zw));
    if is_w {
        tw[u * stride + idx] = e;
    } else {
        ta[u * stride + idx] = e;
    }
#else
    if is_w {
        tw[2u * u * stride + idx] = bitcast<vec4<u32>>(lo);
        tw[(2u * u + 1u) * stride + idx] = bitcast<vec4<u32>>(hi);
    } else {
        ta[2u * u * stride + idx] = bitcast<vec4<u32>>(lo);
        ta[(2u * u + 1u) * stride + idx] = bitcast<vec4<u32>>(hi);
    }
#endif
}

// ---- A: element e of the row-major [M, K] activations.
fn a_at(e: u32) -> f32 {
#if A_F16
#if F16
    return f32(a[e]);
#else
    return f16_at(a[e >> 1u], e);
#endif
#else
    return a[e];
#endif
}

// A[row][k .. k+3], zero past M or K.
fn a_quad(row: u32, k: u32) -> vec4<f32> {
    if row >= p.m {
        return vec4<f32>(0.0);
    }
    let e = row * p.k + k;
    if k + 3u < p.k {
        return vec4<f32>(a_at(e), a_at(e + 1u), a_at(e + 2u), a_at(e + 3u));
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if k + i < p.k {
            v[i] = a_at(e + i);
        }
    }
    return v;
}

// ---- W: one load item dequantizes 16 values of one row and stores two 8-value groups.
#if W_F32
fn w_at(e: u32) -> f32 {
    return w[e];
}
#endif
#if W_F16
fn w_at(e: u32) -> f32 {
#if F16
    return f32(w[e]);
#else
    return f16_at(w[e >> 1u], e);
#endif
}
#endif

#if !W_F32
#if !W_F16
// u32 at an even byte offset (Q8_0 / Q4_0 blocks are only 2-byte aligned).
fn word_at(byte: u32) -> u32 {
    let i = byte >> 2u;
    if (byte & 2u) == 0u {
        return w[i];
    }
    return (w[i] >> 16u) | (w[i + 1u] << 16u);
}

// f16 at an even byte offset, as f32.
fn half_at(byte: u32) -> f32 {
    return f16_at(w[byte >> 2u], byte >> 1u);
}

// Nibbles at bit `shift` of each byte of `v`.
fn nibbles(v: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(shift, shift + 8u, shift + 16u, shift + 24u)) & vec4<u32>(15u));
}

// The four bytes of `v` as signed integers.
fn bytes_i8(v: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
#endif
#endif

// W value at K offset `k` of chunk row `col` (plain formats; zero past K).
#if W_F32
fn w_quad(col: u32, k: u32) -> vec4<f32> {
    let e = col * p.k + k;
    if k + 3u < p.k {
        return vec4<f32>(w_at(e), w_at(e + 1u), w_at(e + 2u), w_at(e + 3u));
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if k + i < p.k {
            v[i] = w_at(e + i);
        }
    }
    return v;
}
#endif
#if W_F16
fn w_quad(col: u32, k: u32) -> vec4<f32> {
    let e = col * p.k + k;
    if k + 3u < p.k {
        return vec4<f32>(w_at(e), w_at(e + 1u), w_at(e + 2u), w_at(e + 3u));
    }
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if k + i < p.k {
            v[i] = w_at(e + i);
        }
    }
    return v;
}
#endif

// Item h (0 .. BK/16) of tile column lc (chunk row n0 + lc) at K offset k0.
fn load_w_item(lc: u32, h: u32, n0: u32, k0: u32) {
    let col = n0 + lc;
    let bn = WG_N * TN;
    var v0 = vec4<f32>(0.0);
    var v1 = v0;
    var v2 = v0;
    var v3 = v0;
    // Plain formats and Q8_0: 16 consecutive values, groups 2h and 2h+1.
    var g0 = 2u * h;
    var g1 = 2u * h + 1u;
#if W_F32
    if col < p.n_rows {
        let k = k0 + 16u * h;
        v0 = w_quad(col, k);
        v1 = w_quad(col, k + 4u);
        v2 = w_quad(col, k + 8u);
        v3 = w_quad(col, k + 12u);
    }
#endif
#if W_F16
    if col < p.n_rows {
        let k = k0 + 16u * h;
        v0 = w_quad(col, k);
        v1 = w_quad(col, k + 4u);
        v2 = w_quad(col, k + 8u);
        v3 = w_quad(col, k + 12u);
    }
#endif
    // Quantized: block b (K is a multiple of 32), half `part` of it.
    let b = (k0 + 16u * h) >> 5u;
    let part = h & 1u;
    let valid = col < p.n_rows && b < (p.k >> 5u);
#if Q8_0
    // 34 bytes: f16 d, then 32 x i8.
    if valid {
        let base = (col * (p.k >> 5u) + b) * 34u;
        let d = half_at(base);
        let o = base + 2u + part * 16u;
        v0 = d * bytes_i8(word_at(o));
        v1 = d * bytes_i8(word_at(o + 4u));
        v2 = d * bytes_i8(word_at(o + 8u));
        v3 = d * bytes_i8(word_at(o + 12u));
    }
#endif
#if Q4_0
    // 18 bytes: f16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high): bytes
    // 8·part .. +7 give elements 8·part .. +7 and 16 + 8·part .. +7, x = d * (q - 8).
    if valid {
        let base = (col * (p.k >> 5u) + b) * 18u;
        let d = half_at(base);
        let q0 = word_at(base + 2u + part * 8u);
        let q1 = word_at(base + 6u + part * 8u);
        v0 = d * (nibbles(q0, 0u) - 8.0);
        v1 = d * (nibbles(q1, 0u) - 8.0);
        v2 = d * (nibbles(q0, 4u) - 8.0);
        v3 = d * (nibbles(q1, 4u) - 8.0);
    }
    g0 = (h & ~1u) * 2u + part;
    g1 = g0 + 2u;
#endif
#if Q4_1
    // 20 bytes (4-aligned): f16 d, f16 m, 16 bytes of nibbles as in Q4_0; x = d * q + m.
    if valid {
        let wb = (col * (p.k >> 5u) + b) * 5u;
        let dm = unpack2x16float(w[wb]);
        let q0 = w[wb + 1u + part * 2u];
        let q1 = w[wb + 2u + part * 2u];
        v0 = dm.x * nibbles(q0, 0u) + dm.y;
        v1 = dm.x * nibbles(q1, 0u) + dm.y;
        v2 = dm.x * nibbles(q0, 4u) + dm.y;
        v3 = dm.x * nibbles(q1, 4u) + dm.y;
    }
    g0 = (h & ~1u) * 2u + part;
    g1 = g0 + 2u;
#endif
    put8(true, g0, bn, lc, v0, v1);
    put8(true, g1, bn, lc, v2, v3);
}

// ---- Register block: TM rows x TN columns per thread, f32 accumulators.
var<private> acc: array<Vn, 8>;

#if F16_MATH
#if TN2
alias Hn = vec2<f16>;
#else
alias Hn = vec4<f16>;
#endif
// Four k: acc[i] += f32(sum of 4 f16 products).
fn k4_step(ar: array<vec4<f16>, 8>, w0: Hn, w1: Hn, w2: Hn, w3: Hn) {
    acc[0] += Vn(Hn(ar[0].x) * w0 + Hn(ar[0].y) * w1 + Hn(ar[0].z) * w2 + Hn(ar[0].w) * w3);
    acc[1] += Vn(Hn(ar[1].x) * w0 + Hn(ar[1].y) * w1 + Hn(ar[1].z) * w2 + Hn(ar[1].w) * w3);
    acc[2] += Vn(Hn(ar[2].x) * w0 + Hn(ar[2].y) * w1 + Hn(ar[2].z) * w2 + Hn(ar[2].w) * w3);
    acc[3] += Vn(Hn(ar[3].x) * w0 + Hn(ar[3].y) * w1 + Hn(ar[3].z) * w2 + Hn(ar[3].w) * w3);
#if TM8
    acc[4] += Vn(Hn(ar[4].x) * w0 + Hn(ar[4].y) * w1 + Hn(ar[4].z) * w2 + Hn(ar[4].w) * w3);
    acc[5] += Vn(Hn(ar[5].x) * w0 + Hn(ar[5].y) * w1 + Hn(ar[5].z) * w2 + Hn(ar[5].w) * w3);
    acc[6] += Vn(Hn(ar[6].x) * w0 + Hn(ar[6].y) * w1 + Hn(ar[6].z) * w2 + Hn(ar[6].w) * w3);
    acc[7] += Vn(Hn(ar[7].x) * w0 + Hn(ar[7].y) * w1 + Hn(ar[7].z) * w2 + Hn(ar[7].w) * w3);
#endif
}

// Entry half `hi` (0: k 0..3, 1: k 4..7) of an f16 tile entry.
fn half4(e: vec4<u32>, hi: bool) -> vec4<f16> {
    // (naga has no bitcast from u32 to vec2<f16>; the unpack is one conversion.)
    let q = select(e.xy, e.zw, hi);
    return vec4<f16>(vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)));
}

// W columns of this thread for tile entry u, four k at a time (k = 4·hi .. 4·hi+3).
fn w4(wb: u32, hi: bool) -> array<Hn, 4> {
    let c0 = half4(tw[wb], hi);
    let c1 = half4(tw[wb + WG_N], hi);
#if TN2
    return array<Hn, 4>(Hn(c0.x, c1.x), Hn(c0.y, c1.y), Hn(c0.z, c1.z), Hn(c0.w, c1.w));
#else
    let c2 = half4(tw[wb + 2u * WG_N], hi);
    let c3 = half4(tw[wb + 3u * WG_N], hi);
    return array<Hn, 4>(Hn(c0.x, c1.x, c2.x, c3.x), Hn(c0.y, c1.y, c2.y, c3.y), Hn(c0.z, c1.z, c2.z, c3.z), Hn(c0.w, c1.w, c2.w, c3.w));
#endif
}

fn a4(ab: u32, hi: bool) -> array<vec4<f16>, 8> {
    var r: array<vec4<f16>, 8>;
    r[0] = half4(ta[ab], hi);
    r[1] = half4(ta[ab + 1u], hi);
    r[2] = half4(ta[ab + 2u], hi);
    r[3] = half4(ta[ab + 3u], hi);
#if TM8
    r[4] = half4(ta[ab + 4u], hi);
    r[5] = half4(ta[ab + 5u], hi);
    r[6] = half4(ta[ab + 6u], hi);
    r[7] = half4(ta[ab + 7u], hi);
#endif
    return r;
}

// Tile entry u (8 k): two 4-term f16 sums per row and column.
fn entry_step(u: u32, tx: u32, row0: u32, sg_lane: u32) {
    let bm = WG_M * TM;
    let bn = WG_N * TN;
    let wb = u * bn + tx;
    let ab = u * bm + row0;
    let wl = w4(wb, false);
    k4_step(a4(ab, false), wl[0], wl[1], wl[2], wl[3]);
    let wh = w4(wb, true);
    k4_step(a4(ab, true), wh[0], wh[1], wh[2], wh[3]);
}
#else
// One k: acc[i] += a[i] * w (rows written out so every index is a constant).
fn k_step(ar: array<f32, 8>, wk: Vn) {
    acc[0] = fma(Vn(ar[0]), wk, acc[0]);
    acc[1] = fma(Vn(ar[1]), wk, acc[1]);
    acc[2] = fma(Vn(ar[2]), wk, acc[2]);
    acc[3] = fma(Vn(ar[3]), wk, acc[3]);
#if TM8
    acc[4] = fma(Vn(ar[4]), wk, acc[4]);
    acc[5] = fma(Vn(ar[5]), wk, acc[5]);
    acc[6] = fma(Vn(ar[6]), wk, acc[6]);
    acc[7] = fma(Vn(ar[7]), wk, acc[7]);
#endif
}

// The thread's column values at one k (the first TN of them).
fn cols(c0: f32, c1: f32, c2: f32, c3: f32) -> Vn {
#if TN2
    return Vn(c0, c1);
#else
    return Vn(c0, c1, c2, c3);
#endif
}

// A tile entry as 4-value quads: lo (k 0..3) and, for f16 tiles, hi (k 4..7).
fn quad_lo(e: vec4<u32>) -> vec4<f32> {
#if TILE_F16
    return vec4<f32>(unpack2x16float(e.x), unpack2x16float(e.y));
#else
    return bitcast<vec4<f32>>(e);
#endif
}

#if TILE_F16
fn quad_hi(e: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(e.z), unpack2x16float(e.w));
}
#endif

#if SG_A
// Value of `v` in lanes 0 .. TM-1, as seen by every lane.
fn bcast(v: f32) -> array<f32, 8> {
#if TM8
    return array<f32, 8>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
#else
    return array<f32, 8>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        0.0, 0.0, 0.0, 0.0);
#endif
}

// Four k: `av` holds this lane's A row, `wq` the thread's columns.
fn quad_step(av: vec4<f32>, wq: array<vec4<f32>, 4>) {
    k_step(bcast(av.x), cols(wq[0].x, wq[1].x, wq[2].x, wq[3].x));
    k_step(bcast(av.y), cols(wq[0].y, wq[1].y, wq[2].y, wq[3].y));
    k_step(bcast(av.z), cols(wq[0].z, wq[1].z, wq[2].z, wq[3].z));
    k_step(bcast(av.w), cols(wq[0].w, wq[1].w, wq[2].w, wq[3].w));
}
#else
// Four k: `ar` holds the thread's A rows, `wq` its columns.
fn quad_step(ar: array<vec4<f32>, 8>, wq: array<vec4<f32>, 4>) {
    k_step(array<f32, 8>(ar[0].x, ar[1].x, ar[2].x, ar[3].x, ar[4].x, ar[5].x, ar[6].x, ar[7].x), cols(wq[0].x, wq[1].x, wq[2].x, wq[3].x));
    k_step(array<f32, 8>(ar[0].y, ar[1].y, ar[2].y, ar[3].y, ar[4].y, ar[5].y, ar[6].y, ar[7].y), cols(wq[0].y, wq[1].y, wq[2].y, wq[3].y));
    k_step(array<f32, 8>(ar[0].z, ar[1].z, ar[2].z, ar[3].z, ar[4].z, ar[5].z, ar[6].z, ar[7].z), cols(wq[0].z, wq[1].z, wq[2].z, wq[3].z));
    k_step(array<f32, 8>(ar[0].w, ar[1].w, ar[2].w, ar[3].w, ar[4].w, ar[5].w, ar[6].w, ar[7].w), cols(wq[0].w, wq[1].w, wq[2].w, wq[3].w));
}
#endif

// Tile entry u: KU steps of k.
fn entry_step(u: u32, tx: u32, row0: u32, sg_lane: u32) {
    let bm = WG_M * TM;
    let bn = WG_N * TN;
    let wb = u * bn + tx;
    let e0 = tw[wb];
    let e1 = tw[wb + WG_N];
#if TN2
    let e2 = e0;
    let e3 = e0;
#else
    let e2 = tw[wb + 2u * WG_N];
    let e3 = tw[wb + 3u * WG_N];
#endif
#if SG_A
    // Lane i loads row i of this thread's block; every lane then reads all of them.
    let ea = ta[u * bm + row0 + sg_lane % TM];
    quad_step(quad_lo(ea), array<vec4<f32>, 4>(quad_lo(e0), quad_lo(e1), quad_lo(e2), quad_lo(e3)));
#if TILE_F16
    quad_step(quad_hi(ea), array<vec4<f32>, 4>(quad_hi(e0), quad_hi(e1), quad_hi(e2), quad_hi(e3)));
#endif
#else
    let ab = u * bm + row0;
    let a0 = ta[ab];
    let a1 = ta[ab + 1u];
    let a2 = ta[ab + 2u];
    let a3 = ta[ab + 3u];
#if TM8
    let a4 = ta[ab + 4u];
    let a5 = ta[ab + 5u];
    let a6 = ta[ab + 6u];
    let a7 = ta[ab + 7u];
#else
    let a4 = a0;
    let a5 = a0;
    let a6 = a0;
    let a7 = a0;
#endif
    quad_step(array<vec4<f32>, 8>(quad_lo(a0), quad_lo(a1), quad_lo(a2), quad_lo(a3), quad_lo(a4), quad_lo(a5), quad_lo(a6), quad_lo(a7)),
        array<vec4<f32>, 4>(quad_lo(e0), quad_lo(e1), quad_lo(e2), quad_lo(e3)));
#if TILE_F16
    quad_step(array<vec4<f32>, 8>(quad_hi(a0), quad_hi(a1), quad_hi(a2), quad_hi(a3), quad_hi(a4), quad_hi(a5), quad_hi(a6), quad_hi(a7)),
        array<vec4<f32>, 4>(quad_hi(e0), quad_hi(e1), quad_hi(e2), quad_hi(e3)));
#endif
#endif
}
#endif

fn store(row: u32, col: u32, v: f32) {
    if row >= p.m || col >= p.n_rows {
        return;
    }
    let i = row * p.n + p.n_off + col;
#if C_F16
    var s = v;
    if p.accumulate != 0u {
        s += f32(c[i]);
    }
    c[i] = f16(s);
#else
    var s = v;
    if p.accumulate != 0u {
        s += c[i];
    }
    c[i] = s;
#endif
}

fn store_row(row: u32, col: u32, v: Vn) {
    store(row, col, v.x);
    store(row, col + WG_N, v.y);
#if !TN2
    store(row, col + 2u * WG_N, v.z);
    store(row, col + 3u * WG_N, v.w);
#endif
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
#if SG_A
    @builtin(subgroup_invocation_id) sg_id: u32,
#endif
) {
#if SG_A
    let sg_lane = sg_id;
#else
    let sg_lane = 0u;
#endif
    let bm = WG_M * TM;
    let bn = WG_N * TN;
    let t = lid.x;
    let tx = t % WG_N;
    let ty = t / WG_N;
    let tiles_n = (p.n_rows + bn - 1u) / bn;
    let tile = linear_group(wid, nwg);
    if tile >= tiles_n * ((p.m + bm - 1u) / bm) {
        return;
    }
    let m0 = (tile / tiles_n) * bm;
    let n0 = (tile % tiles_n) * bn;
    let row0 = ty * TM;

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // A tile: BM rows x BK/8 groups of 8 values.
        let groups = BK / 8u;
        for (var e = t; e < bm * groups; e += WG) {
            let row = e % bm;
            let g = e / bm;
            let k = k0 + g * 8u;
            put8(false, g, bm, row, a_quad(m0 + row, k), a_quad(m0 + row, k + 4u));
        }
        // W tile: BN columns x BK/16 items; consecutive threads read adjacent parts of a row.
        let items = BK / 16u;
        for (var e = t; e < bn * items; e += WG) {
            load_w_item(e / items, e % items, n0, k0);
        }
        workgroupBarrier();

        // Every entry step written out (BK is 32 or 64), so no loop carries the accumulators.
        let entries = BK / KU;
        entry_step(0u, tx, row0, sg_lane);
        entry_step(1u, tx, row0, sg_lane);
        entry_step(2u, tx, row0, sg_lane);
        entry_step(3u, tx, row0, sg_lane);
        if entries > 4u {
            entry_step(4u, tx, row0, sg_lane);
            entry_step(5u, tx, row0, sg_lane);
            entry_step(6u, tx, row0, sg_lane);
            entry_step(7u, tx, row0, sg_lane);
        }
        if entries > 8u {
            entry_step(8u, tx, row0, sg_lane);
            entry_step(9u, tx, row0, sg_lane);
            entry_step(10u, tx, row0, sg_lane);
            entry_step(11u, tx, row0, sg_lane);
            entry_step(12u, tx, row0, sg_lane);
            entry_step(13u, tx, row0, sg_lane);
            entry_step(14u, tx, row0, sg_lane);
            entry_step(15u, tx, row0, sg_lane);
        }
        workgroupBarrier();
    }

    let col = n0 + tx;
    store_row(m0 + row0, col, acc[0]);
    store_row(m0 + row0 + 1u, col, acc[1]);
    store_row(m0 + row0 + 2u, col, acc[2]);
    store_row(m0 + row0 + 3u, col, acc[3]);
#if TM8
    store_row(m0 + row0 + 4u, col, acc[4]);
    store_row(m0 + row0 + 5u, col, acc[5]);
    store_row(m0 + row0 + 6u, col, acc[6]);
    store_row(m0 + row0 + 7u, col, acc[7]);
#endif
}
