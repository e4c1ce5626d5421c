// variants: PLAIN NEOX
// variants-f16: KV_F16 NEOX+KV_F16
// Decode's fused RoPE and KV store: one dispatch reads the q, k and v rows of each token from
// one f32 buffer (a fused QKV projection), rotates q in place, and writes rotated k and plain
// v into the caches at position step.pos + t. Tokens at or past step.n_tokens are left alone.
// Bindings: 0 params (uniform), 1 step (uniform StepParams), 2 freqs (read, per pair hi + lo
// turns as in rope.wgsl), 3 qkv (read_write, f32 as vec4), 4 k cache (rw), 5 v cache (rw).
// Caches are [n_kv_heads, max_ctx, head_dim] of f16 (KV_F16) or f32.
// One thread per vec4 of [token, head of q | k | v, head_dim / 4]. Interleaved pairs (2j, 2j+1)
// sit inside a vec4; with NEOX, the thread of vec4 c < half_rot / 4 also owns its partner
// c + half_rot / 4. Needs n_rot a multiple of 8 with NEOX, of 4 otherwise (checked on the host).

struct Params {
    n_tokens: u32,   // token capacity of the qkv buffer
    n_heads: u32,
    n_kv_heads: u32,
    hd4: u32,        // head_dim / 4
    half_rot: u32,   // rotated pairs per head
    max_ctx: u32,
    stride4: u32,    // vec4s per token row of qkv
    q_off4: u32,     // vec4 offsets of q, k and v inside a token row
    k_off4: u32,
    v_off4: u32,
    _pad0: u32,
    _pad1: u32,
}


#if KV_F16
alias kv4 = vec4<f16>;
#else
alias kv4 = vec4<f32>;
#endif

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> step: StepParams;
@group(0) @binding(2) var<storage, read> freqs: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> qkv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> kc: array<kv4>;
@group(0) @binding(5) var<storage, read_write> vc: array<kv4>;

override WG: u32 = 64u;

// (cos, sin) of pair j's angle at `pos`.
fn cs(j: u32, pos: f32) -> vec2<f32> {
    return rope_cs(freqs[j], pos);
}

fn put(is_q: bool, at: u32, cache_at: u32, v: vec4<f32>) {
    if is_q {
        qkv[at] = v;
    } else {
        kc[cache_at] = kv4(v);
    }
}

@compute @workgroup_size(WG)
fn rope_kv(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_group(wid, nwg) * WG + li;
    let hd4 = p.hd4;
    let per_token = (p.n_heads + 2u * p.n_kv_heads) * hd4;
    let t = i / per_token;
    let pos = step.pos + t;
    if t >= min(p.n_tokens, step.n_tokens) || pos >= p.max_ctx {
        return;
    }
    let rem = i - t * per_token;
    let head = rem / hd4;
    let c = rem - head * hd4;
    let row = t * p.stride4;
    if head >= p.n_heads + p.n_kv_heads {
        let vh = head - p.n_heads - p.n_kv_heads;
        vc[(vh * p.max_ctx + pos) * hd4 + c] = kv4(qkv[row + p.v_off4 + vh * hd4 + c]);
        return;
    }
    let is_q = head < p.n_heads;
    let kh = head - select(p.n_heads, 0u, is_q);
    let src = row + select(p.k_off4 + kh * hd4, p.q_off4 + head * hd4, is_q);
    let dst = (kh * p.max_ctx + pos) * hd4;
    let fpos = f32(pos);
    let v = qkv[src + c];
#if NEOX
    let h4 = p.half_rot / 4u;
    if c < h4 {
        // Pairs (4c + e, 4c + e + half_rot), e = 0..3.
        let w = qkv[src + c + h4];
        let a0 = cs(4u * c, fpos);
        let a1 = cs(4u * c + 1u, fpos);
        let a2 = cs(4u * c + 2u, fpos);
        let a3 = cs(4u * c + 3u, fpos);
        let co = vec4<f32>(a0.x, a1.x, a2.x, a3.x);
        let si = vec4<f32>(a0.y, a1.y, a2.y, a3.y);
        put(is_q, src + c, dst + c, v * co - w * si);
        put(is_q, src + c + h4, dst + c + h4, v * si + w * co);
    } else if c >= 2u * h4 {
        put(is_q, src + c, dst + c, v);
    }
#else
    if 2u * c < p.half_rot {
        // Pairs (4c, 4c + 1) and (4c + 2, 4c + 3): pair indices 2c and 2c + 1.
        let a0 = cs(2u * c, fpos);
        let a1 = cs(2u * c + 1u, fpos);
        let r = vec4<f32>(
            v.x * a0.x - v.y * a0.y,
            v.x * a0.y + v.y * a0.x,
            v.z * a1.x - v.w * a1.y,
            v.z * a1.y + v.w * a1.x,
        );
        put(is_q, src + c, dst + c, r);
    } else {
        put(is_q, src + c, dst + c, v);
    }
#endif
}
