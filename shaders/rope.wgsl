// variants: PLAIN NEOX
// Rotary position embedding, in place on x f32 [n_tokens, n_heads, head_dim]. Token t sits at
// position step.pos + t; tokens at or past step.n_tokens are left alone, so a buffer sized for
// the longest batch can be reused by shorter ones without new bind groups.
// Pair j (< n_rot / 2) is (2j, 2j + 1) by default (interleaved, GGUF llama), or (j, j + n_rot / 2)
// with NEOX (rotate-half). Dimensions from n_rot on are not touched.
// Bindings: 0 params (uniform), 1 step (uniform StepParams), 2 freqs (read), 3 x (read_write).
//
// Accuracy: freqs[j] holds the pair's frequency in turns per position split as hi + lo, where hi
// has 7 significant bits, so pos * hi is exact for pos < 2^17 and its fraction is exact too. Only
// the small pos * lo term rounds; the angle is reduced to [-pi, pi] before sin/cos, whose
// accuracy WGSL guarantees only on that range.

struct Params {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    half_rot: u32,
}


@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> freqs: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn rope(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_group(wid, nwg) * WG + li;
    let n_tokens = min(p.n_tokens, step.n_tokens);
    let rows = n_tokens * p.n_heads;
    let row = i / p.half_rot;
    if row >= rows {
        return;
    }
    let j = i - row * p.half_rot;
    let t = row / p.n_heads;
    let pos = f32(step.pos + t);
    let cs = rope_cs(freqs[j], pos);
    let c = cs.x;
    let s = cs.y;
    let base = row * p.head_dim;
#if NEOX
    let a = base + j;
    let b = a + p.half_rot;
#else
    let a = base + 2u * j;
    let b = a + 1u;
#endif
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
}
