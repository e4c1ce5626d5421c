// variants: W_F32+PLAIN_W W_F32+PLAIN_W+A_VEC+W_VEC W_F16+PLAIN_W+A_VEC+W_VEC Q8_0+A_VEC Q4_0+A_VEC
// variants: Q4_1+A_VEC Q4_1 A_F16+A_VEC+Q4_0 TM8+TN2+Q8_0+A_VEC
// variants: Q4_0+A_VEC+TILE_F16+F16_MATH+F16 W_F16+PLAIN_W+A_VEC+W_VEC+RAW_W+TILE_F16+F16_MATH+F16
// variants: A_F16+A_VEC+RAW_A+Q8_0+TILE_F16+F16 C_F16+Q4_1+A_VEC+TILE_F16+F16
// variants: Q4_1+A_VEC+TM8+SG_A+TILE_F16+SOFT_PACK+F16+SUBGROUP Q8_0+A_VEC+TM8+SG_A+TILE_F16+SOFT_PACK+F16+SUBGROUP
// variants: W_F16+PLAIN_W+A_VEC+W_VEC+RAW_W+TM8+SG_A+TILE_F16+SOFT_PACK+F16+SUBGROUP
// variants: Q4_1+A_VEC+TM8+SG_A+TILE_F16+SOFT_PACK+F16+SUBGROUP+GROUPED Q8_0+A_VEC+GROUPED
// Tiled matmul: C[M, N] (+)= A[M, K] · W[N, K]^T, one dispatch per row chunk of W.
// W (GGUF layout, one chunk of rows) is dequantized while its tile loads into workgroup memory.
// Bindings: 0 params (uniform), 1 a (read), 2 w chunk (read), 3 c (read_write).
// Flags: A_F16, C_F16; one of W_F32 / W_F16 (both with PLAIN_W) / Q8_0 / Q4_0 / Q4_1;
//   A_VEC / W_VEC: A (or plain W) rows are whole 16-byte vectors (K % 4 == 0 for f32,
//         K % 8 == 0 for f16), read as vec4 words; RAW_A / RAW_W: such f16 rows are copied
//         into f16 tiles as they are;
//   TM8: 8 rows per thread (else 4); TN2: 2 columns per thread (else 4);
//   SG_A: a subgroup loads its TM A rows once (one per lane) and broadcasts them: cheap on CPU
//         adapters, which run every lane-varying load one lane at a time; needs SUBGROUP;
//   TILE_F16: tiles hold f16 (8 per entry): half the workgroup memory and loads;
//   SOFT_PACK: convert to f16 with integer ops (CPU adapters emulate pack2x16float slowly);
//   F16_MATH: f16 products in 4-term sums added to f32 accumulators; needs F16 and TILE_F16;
//   GROUPED (q8_0 / q4_1): W is in row groups (group_slot, src/gpu/chunked.rs), not row-major.
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
#if A_VEC
#if A_F16
@group(0) @binding(1) var<storage, read> a: array<vec4<u32>>;
#else
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
#endif
#else
#if A_F16
@group(0) @binding(1) var<storage, read> a: array<u32>;
#else
@group(0) @binding(1) var<storage, read> a: array<f32>;
#endif
#endif
#if W_VEC
#if W_F16
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
#else
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
#endif
#else
#if W_F32
@group(0) @binding(2) var<storage, read> w: array<f32>;
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
alias Vn = vec2<f32>;
const TN: u32 = 2u;
#else
alias Vn = vec4<f32>;
const TN: u32 = 4u;
#endif

// Entries per operand tile (8 KiB each); the host keeps BM and BN times BK / (values per
// entry) within it.
const TILE: u32 = 512u;
var<workgroup> ta: array<vec4<u32>, TILE>;
var<workgroup> tw: array<vec4<u32>, TILE>;

#if SOFT_PACK
// f32 -> f16 bits in integer ops, for adapters whose pack2x16float is a long emulation (CPU
// adapters): round to nearest even, flush below f16's normal range to zero, saturate to inf.
fn pack2(v: vec2<f32>) -> u32 {
    let b = bitcast<vec2<u32>>(v);
    let a = b & vec2<u32>(0x7fffffffu);
    var h = (a - vec2<u32>(0x38000000u) + vec2<u32>(0xfffu) + ((a >> vec2<u32>(13u)) & vec2<u32>(1u))) >> vec2<u32>(13u);
    h = select(h, vec2<u32>(0u), a < vec2<u32>(0x38800000u));
    h = select(h, vec2<u32>(0x7c00u), a >= vec2<u32>(0x477ff000u));
    h |= (b >> vec2<u32>(16u)) & vec2<u32>(0x8000u);
    return h.x | (h.y << 16u);
}
#else
fn pack2(v: vec2<f32>) -> u32 {
    return pack2x16float(v);
}
#endif

// Store 8 values along K (group g of 8) of tile row/column `idx`: one f16 entry or two f32 ones.
fn put8(is_w: bool, g: u32, stride: u32, idx: u32, lo: vec4<f32>, hi: vec4<f32>) {
#if TILE_F16
    let i0 = g * stride + idx;
    let e0 = vec4<u32>(pack2(lo.xy), pack2(lo.zw), pack2(hi.xy), pack2(hi.zw));
    let i1 = i0;
    let e1 = e0;
#else
    let i0 = 2u * g * stride + idx;
    let e0 = bitcast<vec4<u32>>(lo);
    let i1 = i0 + stride;
    let e1 = bitcast<vec4<u32>>(hi);
#endif
    if is_w {
        tw[i0] = e0;
        tw[i1] = e1;
    } else {
        ta[i0] = e0;
        ta[i1] = e1;
    }
}

// Eight f16 packed in a vec4<u32>, as two f32 quads.
fn unpack8(v: vec4<u32>) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)), vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)));
}

// ---- A: 8 values of row `row` from K offset k (a multiple of 8), zero past M or K.
fn a_oct(row: u32, k: u32) -> array<vec4<f32>, 2> {
    var r = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    if row >= p.m {
        return r;
    }
#if A_VEC
#if A_F16
    // K % 8 == 0: one vector per 8 values.
    if k < p.k {
        r = unpack8(a[(row * p.k + k) >> 3u]);
    }
#else
    // K % 4 == 0: each quad is all in or all out.
    let e = (row * p.k + k) >> 2u;
    if k < p.k {
        r[0] = a[e];
    }
    if k + 4u < p.k {
        r[1] = a[e + 1u];
    }
#endif
#else
    let e = row * p.k + k;
    for (var i = 0u; i < 8u; i++) {
        if k + i < p.k {
#if A_F16
            r[i >> 2u][i & 3u] = f16_at(a[(e + i) >> 1u], e + i);
#else
            r[i >> 2u][i & 3u] = a[e + i];
#endif
        }
    }
#endif
    return r;
}

// ---- W: one load item is 8 values of a plain row, or one quant block of 32, dequantized.
// PLAIN_W is set with W_F32 and W_F16.
#if PLAIN_W
const W_ITEM: u32 = 8u;
#else
const W_ITEM: u32 = 32u;
#endif
// Nibbles at bit `shift` of each byte of `v`.
fn nibbles(v: u32, shift: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(shift, shift + 8u, shift + 16u, shift + 24u)) & vec4<u32>(15u));
}

// The four bytes of `v` as signed integers.
fn bytes_i8(v: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(v)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// The 32 values d * q + m of 4-bit quants in words q0..q3 (byte j: element j low, j+16 high).
fn q4_block(q0: u32, q1: u32, q2: u32, q3: u32, d: f32, m: f32) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(d * nibbles(q0, 0u) + m, d * nibbles(q1, 0u) + m, d * nibbles(q2, 0u) + m, d * nibbles(q3, 0u) + m,
        d * nibbles(q0, 4u) + m, d * nibbles(q1, 4u) + m, d * nibbles(q2, 4u) + m, d * nibbles(q3, 4u) + m);
}

// Word j of the quants of a block starting at byte B = 4·i0 + 2·odd, whose quants start at B+2:
// x holds the aligned words from i0 on (Q8_0 / Q4_0 blocks are only 2-byte aligned).
fn realign(lo: u32, hi: u32, odd: bool) -> u32 {
    return select((lo >> 16u) | (hi << 16u), hi, odd);
}

#if PLAIN_W
// Group g of 8 values (K offset k0 + 8·g) of tile column lc, zero past the chunk or K.
fn load_w_item(lc: u32, g: u32, n0: u32, k0: u32) {
    let col = n0 + lc;
    let k = k0 + 8u * g;
#if RAW_W
    // f16 rows into f16 tiles: copy the bits.
    var raw = vec4<u32>(0u);
    if col < p.n_rows && k < p.k {
        raw = w[(col * p.k + k) >> 3u];
    }
    tw[g * WG_N * TN + lc] = raw;
#else
    var v = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    if col < p.n_rows && k < p.k {
#if W_VEC
#if W_F16
        // K % 8 == 0: one vector of 8.
        v = unpack8(w[(col * p.k + k) >> 3u]);
#else
        // K % 4 == 0: two quads, each all in or all out.
        let e = (col * p.k + k) >> 2u;
        v[0] = w[e];
        if k + 4u < p.k {
            v[1] = w[e + 1u];
        }
#endif
#else
        let e = col * p.k + k;
        for (var i = 0u; i < 8u; i++) {
            if k + i < p.k {
#if W_F16
                v[i >> 2u][i & 3u] = f16_at(w[(e + i) >> 1u], e + i);
#else
                v[i >> 2u][i & 3u] = w[e + i];
#endif
            }
        }
#endif
    }
    put8(true, g, WG_N * TN, lc, v[0], v[1]);
#endif
}
#else
#if Q8_0
const BLOCK_BYTES: u32 = 34u;
#endif
#if Q4_0
const BLOCK_BYTES: u32 = 18u;
#endif
#if Q4_1
const BLOCK_BYTES: u32 = 20u;
#endif

// Byte offset of block kb of W row `col` in the chunk.
fn block_byte(col: u32, kb: u32) -> u32 {
#if GROUPED
    return (2u * group_slot(col, kb >> 1u, p.k >> 6u) + (kb & 1u)) * BLOCK_BYTES;
#else
    return (col * (p.k >> 5u) + kb) * BLOCK_BYTES;
#endif
}

// Block bt of the tile (32 values from K offset k0 + 32·bt) of tile column lc.
fn load_w_item(lc: u32, bt: u32, n0: u32, k0: u32) {
    let col = n0 + lc;
    let bn = WG_N * TN;
    let k = k0 + 32u * bt;
    var v: array<vec4<f32>, 8>;
    let b = block_byte(col, k >> 5u);
    if col < p.n_rows && k < p.k {
#if Q8_0
        // 34 bytes: f16 d, 32 x i8.
        let i0 = b >> 2u;
        let odd = (b & 2u) != 0u;
        let x0 = w[i0];
        let x1 = w[i0 + 1u];
        let x2 = w[i0 + 2u];
        let x3 = w[i0 + 3u];
        let x4 = w[i0 + 4u];
        let x5 = w[i0 + 5u];
        let x6 = w[i0 + 6u];
        let x7 = w[i0 + 7u];
        let x8 = w[i0 + 8u];
        let d = select(unpack2x16float(x0).x, unpack2x16float(x0).y, odd);
        v[0] = d * bytes_i8(realign(x0, x1, odd));
        v[1] = d * bytes_i8(realign(x1, x2, odd));
        v[2] = d * bytes_i8(realign(x2, x3, odd));
        v[3] = d * bytes_i8(realign(x3, x4, odd));
        v[4] = d * bytes_i8(realign(x4, x5, odd));
        v[5] = d * bytes_i8(realign(x5, x6, odd));
        v[6] = d * bytes_i8(realign(x6, x7, odd));
        v[7] = d * bytes_i8(realign(x7, x8, odd));
#endif
#if Q4_0
        // 18 bytes: f16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high);
        // x = d * (q - 8).
        let i0 = b >> 2u;
        let odd = (b & 2u) != 0u;
        // The 5th word reaches 2 bytes past the block only when it is not `odd`, and stays in
        // the 4-byte padded buffer (an even block count ends 2 bytes short of a word).
        let x0 = w[i0];
        let x1 = w[i0 + 1u];
        let x2 = w[i0 + 2u];
        let x3 = w[i0 + 3u];
        let x4 = w[i0 + 4u];
        let d = select(unpack2x16float(x0).x, unpack2x16float(x0).y, odd);
        v = q4_block(realign(x0, x1, odd), realign(x1, x2, odd), realign(x2, x3, odd), realign(x3, x4, odd), d, -8.0 * d);
#endif
#if Q4_1
        // 20 bytes (4-aligned): f16 d, f16 m, 16 bytes of nibbles as in Q4_0; x = d * q + m.
        let i0 = b >> 2u;
        let dm = unpack2x16float(w[i0]);
        v = q4_block(w[i0 + 1u], w[i0 + 2u], w[i0 + 3u], w[i0 + 4u], dm.x, dm.y);
#endif
    }
    put8(true, 4u * bt, bn, lc, v[0], v[1]);
    put8(true, 4u * bt + 1u, bn, lc, v[2], v[3]);
    put8(true, 4u * bt + 2u, bn, lc, v[4], v[5]);
    put8(true, 4u * bt + 3u, bn, lc, v[6], v[7]);
}
#endif

// ---- Register block: TM rows x TN columns per thread, f32 accumulators.
var<private> acc: array<Vn, 8>;

// The thread's column values at one k (the first TN of them).
fn cols(c0: f32, c1: f32, c2: f32, c3: f32) -> Vn {
#if TN2
    return Vn(c0, c1);
#else
    return Vn(c0, c1, c2, c3);
#endif
}

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

// Half `hi` (k 0..3 or 4..7) of an f16 tile entry. (naga has no bitcast from u32 to
// vec2<f16>; the unpack is one conversion.)
fn half4(e: vec4<u32>, hi: bool) -> vec4<f16> {
    let q = select(e.xy, e.zw, hi);
    return vec4<f16>(vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y)));
}

// Tile entry u (8 k): two 4-term f16 sums per row and column.
fn entry_step(u: u32, tx: u32, row0: u32, sg_lane: u32) {
    let wb = u * WG_N * TN + tx;
    let ab = u * WG_M * TM + row0;
    for (var h = 0u; h < 2u; h++) {
        let hi = h == 1u;
        let c0 = half4(tw[wb], hi);
        let c1 = half4(tw[wb + WG_N], hi);
#if TN2
        let c2 = c0;
        let c3 = c0;
        let w0 = Hn(c0.x, c1.x);
        let w1 = Hn(c0.y, c1.y);
        let w2 = Hn(c0.z, c1.z);
        let w3 = Hn(c0.w, c1.w);
#else
        let c2 = half4(tw[wb + 2u * WG_N], hi);
        let c3 = half4(tw[wb + 3u * WG_N], hi);
        let w0 = Hn(c0.x, c1.x, c2.x, c3.x);
        let w1 = Hn(c0.y, c1.y, c2.y, c3.y);
        let w2 = Hn(c0.z, c1.z, c2.z, c3.z);
        let w3 = Hn(c0.w, c1.w, c2.w, c3.w);
#endif
        var ar: array<vec4<f16>, 8>;
        ar[0] = half4(ta[ab], hi);
        ar[1] = half4(ta[ab + 1u], hi);
        ar[2] = half4(ta[ab + 2u], hi);
        ar[3] = half4(ta[ab + 3u], hi);
#if TM8
        ar[4] = half4(ta[ab + 4u], hi);
        ar[5] = half4(ta[ab + 5u], hi);
        ar[6] = half4(ta[ab + 6u], hi);
        ar[7] = half4(ta[ab + 7u], hi);
#endif
        k4_step(ar, w0, w1, w2, w3);
    }
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

// A tile entry as 4-value quads: lo (k 0..3) and, for f16 tiles, hi (k 4..7).
fn quad_lo(e: vec4<u32>) -> vec4<f32> {
#if TILE_F16
    return vec4<f32>(unpack2x16float(e.x), unpack2x16float(e.y));
#else
    return bitcast<vec4<f32>>(e);
#endif
}

fn quad_hi(e: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(e.z), unpack2x16float(e.w));
}

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

// Tile entry u: 4 (f32) or 8 (f16) steps of k.
fn entry_step(u: u32, tx: u32, row0: u32, sg_lane: u32) {
    let wb = u * WG_N * TN + tx;
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
    let ea = ta[u * WG_M * TM + row0 + sg_lane % TM];
    quad_step(quad_lo(ea), array<vec4<f32>, 4>(quad_lo(e0), quad_lo(e1), quad_lo(e2), quad_lo(e3)));
#if TILE_F16
    quad_step(quad_hi(ea), array<vec4<f32>, 4>(quad_hi(e0), quad_hi(e1), quad_hi(e2), quad_hi(e3)));
#endif
#else
    let ab = u * WG_M * TM + row0;
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
    var s = v;
#if C_F16
    if p.accumulate != 0u {
        s += f32(c[i]);
    }
    c[i] = f16(s);
#else
    if p.accumulate != 0u {
        s += c[i];
    }
    c[i] = s;
#endif
}

// Accumulator row i, picked with constant indices only (a dynamic index would move the whole
// register block to memory).
fn acc_row(i: u32) -> Vn {
    var v = acc[0];
    if i == 1u { v = acc[1]; }
    if i == 2u { v = acc[2]; }
    if i == 3u { v = acc[3]; }
#if TM8
    if i == 4u { v = acc[4]; }
    if i == 5u { v = acc[5]; }
    if i == 6u { v = acc[6]; }
    if i == 7u { v = acc[7]; }
#endif
    return v;
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
    let row0 = (t / WG_N) * TM;
    let tiles_n = (p.n_rows + bn - 1u) / bn;
    let tile = linear_group(wid, nwg);
    if tile >= tiles_n * ((p.m + bm - 1u) / bm) {
        return;
    }
    let m0 = (tile / tiles_n) * bm;
    let n0 = (tile % tiles_n) * bn;
#if TILE_F16
    let entries = BK / 8u;
#else
    let entries = BK / 4u;
#endif

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // A tile: BM rows x BK/8 groups of 8; W tile: BN columns x BK/W_ITEM items. Adjacent
        // threads take adjacent parts of one row (coalesced global reads).
        for (var e = t; e < bm * (BK / 8u); e += WG) {
            let row = e / (BK / 8u);
            let g = e % (BK / 8u);
#if RAW_A
            // f16 rows into f16 tiles: copy the bits.
            let k = k0 + 8u * g;
            var raw = vec4<u32>(0u);
            if m0 + row < p.m && k < p.k {
                raw = a[((m0 + row) * p.k + k) >> 3u];
            }
            ta[g * bm + row] = raw;
#else
            let v = a_oct(m0 + row, k0 + 8u * g);
            put8(false, g, bm, row, v[0], v[1]);
#endif
        }
        for (var e = t; e < bn * (BK / W_ITEM); e += WG) {
            load_w_item(e / (BK / W_ITEM), e % (BK / W_ITEM), n0, k0);
        }
        workgroupBarrier();
        for (var u = 0u; u < entries; u++) {
            entry_step(u, tx, row0, sg_lane);
        }
        workgroupBarrier();
    }

    // One store in a loop keeps the code small (each lane-varying store is long on CPU adapters).
    for (var i = 0u; i < TM; i++) {
        let v = acc_row(i);
        for (var j = 0u; j < TN; j++) {
            store(m0 + row0 + i, n0 + tx + j * WG_N, v[j]);
        }
    }
}
