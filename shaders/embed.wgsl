// variants: FMT_F32 FMT_F16 FMT_Q8_0 FMT_Q4_0 FMT_Q4_1 FMT_Q8_0+GROUPED FMT_Q4_1+GROUPED
// Embedding gather: out[t] = dequantized table row ids[t], one workgroup per token.
// The table may be split into row chunks: this dispatch holds rows [row_start, row_start + rows)
// and writes only the tokens whose id falls there; the dispatch of the last chunk also writes
// zeros for ids past the vocabulary, so no token's row is left stale.
// Table format by flag: FMT_F32, FMT_F16, FMT_Q8_0, FMT_Q4_0 or FMT_Q4_1 (GGUF byte layout),
// always read as u32 words. Quantized blocks are only 2-byte aligned, so bytes and f16s are cut
// out with shifts. f16 goes through unpack2x16float on every device: a gather does no f16
// arithmetic that SHADER_F16 could speed up.
// GROUPED (q8_0 / q4_1): the table is in row groups (group_slot, src/gpu/chunked.rs).
// Bindings: 0 params (uniform), 1 ids (read), 2 table chunk (read), 3 out (read_write).

struct Params {
    n_tokens: u32,
    dim: u32,
    row_start: u32,
    rows: u32,
    row_bytes: u32,
    last: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256u;

// Byte at byte offset `o`.
fn byte_at(o: u32) -> u32 {
    return (table[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

// f16 at (2-byte aligned) byte offset `o`, as f32.
fn half_at(o: u32) -> f32 {
    let w = table[o >> 2u];
    return unpack2x16float(select(w, w >> 16u, (o & 2u) != 0u)).x;
}

// Byte offset of block kb of chunk row `row`, blocks of `bytes` bytes.
fn block_at(row: u32, kb: u32, bytes: u32) -> u32 {
#if GROUPED
    return (2u * group_slot(row, kb >> 1u, p.dim >> 6u) + (kb & 1u)) * bytes;
#else
    return row * p.row_bytes + kb * bytes;
#endif
}

// Element e of chunk row `row`.
fn load(row: u32, e: u32) -> f32 {
#if FMT_F32
    return bitcast<f32>(table[row * (p.row_bytes >> 2u) + e]);
#endif
#if FMT_F16
    return half_at(row * p.row_bytes + 2u * e);
#endif
#if FMT_Q8_0
    let b = block_at(row, e >> 5u, 34u);
    let q = i32(byte_at(b + 2u + (e & 31u)) << 24u) >> 24u;
    return half_at(b) * f32(q);
#endif
#if FMT_Q4_0
    let b = block_at(row, e >> 5u, 18u);
    let j = e & 31u;
    let q = (byte_at(b + 2u + (j & 15u)) >> select(0u, 4u, j >= 16u)) & 15u;
    return half_at(b) * (f32(q) - 8.0);
#endif
#if FMT_Q4_1
    let b = block_at(row, e >> 5u, 20u);
    let j = e & 31u;
    let q = (byte_at(b + 4u + (j & 15u)) >> select(0u, 4u, j >= 16u)) & 15u;
    return half_at(b) * f32(q) + half_at(b + 2u);
#endif
}

@compute @workgroup_size(WG)
fn embed(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_group(wid, nwg);
    if t >= p.n_tokens {
        return;
    }
    let id = ids[t];
    let o = t * p.dim;
    if id >= p.row_start && id - p.row_start < p.rows {
        let row = id - p.row_start;
        for (var e = lid; e < p.dim; e += WG) {
            out[o + e] = load(row, e);
        }
    } else if p.last == 1u && id >= p.row_start + p.rows {
        for (var e = lid; e < p.dim; e += WG) {
            out[o + e] = 0.0;
        }
    }
}
