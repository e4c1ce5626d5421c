// Helpers prepended to every shader (after `enable f16;` when the F16 variant is built).

// The decode position uniform (ops::StepParams) that position-dependent kernels bind.
struct StepParams { pos: u32, n_tokens: u32, seq_len: u32, _pad: u32 }

// (cos, sin) of a RoPE pair's angle at `pos`, given the pair's frequency in turns per position
// split as hi + lo (see rope.wgsl): the angle comes from exact turns, reduced to [-pi, pi].
fn rope_cs(f: vec2<f32>, pos: f32) -> vec2<f32> {
    let turns = fract(pos * f.x) + fract(pos * f.y);
    let angle = (turns - round(turns)) * 6.283185307179586;
    return vec2<f32>(cos(angle), sin(angle));
}

// Rows per group of the grouped weight layout (src/gpu/chunked.rs, ROW_GROUP there).
const ROW_GROUP: u32 = 16u;

// Slot of unit u (two blocks) of row `row` in the grouped layout of rows of `units` units: the
// units of a group's rows sit side by side, unit by unit.
fn group_slot(row: u32, u: u32, units: u32) -> u32 {
    return ((row / ROW_GROUP) * units + u) * ROW_GROUP + row % ROW_GROUP;
}

// Linear workgroup index for grids folded over x and y (see Gpu::grid).
fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// Two f16 values packed in one u32 (low half first), as f32.
fn f16x2(word: u32) -> vec2<f32> {
    return unpack2x16float(word);
}

// The f16 at element index `i` of an f16 array stored as array<u32>.
fn f16_at(word: u32, i: u32) -> f32 {
    let pair = unpack2x16float(word);
    return select(pair.x, pair.y, (i & 1u) == 1u);
}
