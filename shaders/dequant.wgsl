// variants: F16W Q8_0 Q4_0 Q4_1 F16W+OUT_F16 Q8_0+OUT_F16 Q4_0+OUT_F16 Q4_1+OUT_F16
// Standalone dequantization of a Q8_0 / Q4_0 / Q4_1 / F16 tensor (GGUF byte layout, read as
// u32 words) to f32, or to f16 (OUT_F16: native f16 when F16, else pairs packed in u32).
// Bindings: 0 params (uniform), 1 src (read), 2 out (read_write).
// One thread decodes one unit: a block of 32 values, or for F16W sources one word (2 values).

struct Params {
    units: u32, // blocks (or words for F16W)
    n: u32,     // elements
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<u32>;
#if OUT_F16
#if F16
@group(0) @binding(2) var<storage, read_write> out: array<f16>;
#else
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
#endif
#else
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
#endif

override WG: u32 = 64u;

#if F16W
const UNIT: u32 = 2u;
#else
const UNIT: u32 = 32u;
#endif

// Word i of a block's quants that start after the f16 scale at byte `off` (a multiple of 2).
fn quant_word(off: u32, i: u32) -> u32 {
    let b = off >> 2u;
    if (off & 2u) != 0u {
        return src[b + 1u + i];
    }
    return (src[b + i] >> 16u) | (src[b + i + 1u] << 16u);
}

// The f16 at byte `off` (a multiple of 2).
fn half_at(off: u32) -> f32 {
    let pair = unpack2x16float(src[off >> 2u]);
    return select(pair.x, pair.y, (off & 2u) != 0u);
}

fn decode(g: u32, v: ptr<function, array<f32, 32>>) {
#if F16W
    let pair = unpack2x16float(src[g]);
    (*v)[0] = pair.x;
    (*v)[1] = pair.y;
#endif
#if Q8_0
    let off = g * 34u;
    let d = half_at(off);
    for (var i = 0u; i < 8u; i++) {
        let q = bitcast<i32>(quant_word(off, i));
        for (var k = 0u; k < 4u; k++) {
            (*v)[i * 4u + k] = d * f32((q << (24u - 8u * k)) >> 24u);
        }
    }
#endif
#if Q4_0
    let off = g * 18u;
    let d = half_at(off);
    for (var i = 0u; i < 4u; i++) {
        let q = quant_word(off, i);
        for (var k = 0u; k < 4u; k++) {
            (*v)[i * 4u + k] = d * (f32((q >> (8u * k)) & 15u) - 8.0);
            (*v)[16u + i * 4u + k] = d * (f32((q >> (8u * k + 4u)) & 15u) - 8.0);
        }
    }
#endif
#if Q4_1
    let b = g * 5u;
    let dm = unpack2x16float(src[b]);
    for (var i = 0u; i < 4u; i++) {
        let q = src[b + 1u + i];
        for (var k = 0u; k < 4u; k++) {
            (*v)[i * 4u + k] = dm.x * f32((q >> (8u * k)) & 15u) + dm.y;
            (*v)[16u + i * 4u + k] = dm.x * f32((q >> (8u * k + 4u)) & 15u) + dm.y;
        }
    }
#endif
}

@compute @workgroup_size(WG)
fn dequant(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let g = linear_group(wid, nwg) * WG + t;
    if g >= p.units {
        return;
    }
    var v: array<f32, 32>;
    decode(g, &v);
    let first = g * UNIT;
#if OUT_F16
#if F16
    for (var i = 0u; i < UNIT; i++) {
        if first + i < p.n {
            out[first + i] = f16(v[i]);
        }
    }
#else
    // UNIT is even, so a unit fills whole words (the last word's upper half may be padding).
    for (var i = 0u; i < UNIT / 2u; i++) {
        out[first / 2u + i] = pack2x16float(vec2<f32>(v[2u * i], v[2u * i + 1u]));
    }
#endif
#else
    for (var i = 0u; i < UNIT; i++) {
        if first + i < p.n {
            out[first + i] = v[i];
        }
    }
#endif
}
