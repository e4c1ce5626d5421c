//! WGSL sources and the small `#if` preprocessor that picks structural variants
//! (F16, SUBGROUP, per-format switches). Numbers are WGSL `override` constants instead.

use std::collections::BTreeSet;

/// `(name, source)` of one file in shaders/.
macro_rules! shader {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../shaders/", $name, ".wgsl")),
        )
    };
}

/// Every shader file in shaders/, by name.
pub const SHADERS: &[(&str, &str)] = &[
    shader!("common"),
    shader!("elementwise"),
    shader!("embed"),
    shader!("norm"),
    shader!("rope"),
    shader!("rope_kv"),
    shader!("softmax"),
    shader!("topk"),
    shader!("attention"),
    shader!("matvec"),
    shader!("dequant"),
    shader!("bandwidth"),
    shader!("matmul"),
];

/// Look up a shader's source by name.
pub fn source(name: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The structural switches a variant was built with; sorted, so usable as a key.
pub type Flags = BTreeSet<&'static str>;

/// Expand `#if NAME` / `#if !NAME` / `#else` / `#endif` lines (nestable) against `flags`.
pub fn preprocess(src: &str, flags: &Flags) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    // Each frame: (this branch is active, some branch of this #if was taken).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &Vec<(bool, bool)>| stack.iter().all(|f| f.0);
    for (n, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if let Some(cond) = t.strip_prefix("#if ") {
            let cond = cond.trim();
            let value = match cond.strip_prefix('!') {
                Some(name) => !flags.contains(name.trim()),
                None => flags.contains(cond),
            };
            stack.push((value, value));
        } else if t.starts_with("#else") {
            let top = stack
                .last_mut()
                .ok_or(format!("line {}: #else without #if", n + 1))?;
            *top = (!top.1, true);
        } else if t.starts_with("#endif") {
            stack
                .pop()
                .ok_or(format!("line {}: #endif without #if", n + 1))?;
        } else if t.starts_with('#') {
            return Err(format!("line {}: unknown directive '{t}'", n + 1));
        } else if active(&stack) {
            out.push_str(line);
        }
        // Keep line numbers stable for naga's messages.
        out.push('\n');
    }
    if !stack.is_empty() {
        return Err("unterminated #if".into());
    }
    Ok(out)
}

/// Full WGSL text of `name` for `flags`: `enable f16;` when F16, then common helpers, then the
/// shader itself.
pub fn assemble(name: &str, flags: &Flags) -> Result<String, String> {
    let body = source(name).ok_or(format!("no shader named '{name}'"))?;
    let mut text = String::new();
    if flags.contains("F16") {
        text.push_str("enable f16;\n");
    }
    text.push_str(&preprocess(source("common").unwrap(), flags)?);
    text.push_str(&preprocess(body, flags)?);
    Ok(text)
}

/// naga capabilities a variant may use: f16 only when built with F16, subgroups only with
/// SUBGROUP, 64-bit integers only with INT64, so a fallback variant that slips in either fails validation.
pub fn capabilities(flags: &Flags) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    // pack/unpack2x16float are core WebGPU; naga puts them behind this capability.
    let mut caps = C::SHADER_FLOAT16_IN_FLOAT32;
    if flags.contains("F16") {
        caps |= C::SHADER_FLOAT16;
    }
    if flags.contains("SUBGROUP") {
        caps |= C::SUBGROUP | C::SUBGROUP_BARRIER;
    }
    if flags.contains("INT64") {
        caps |= C::SHADER_INT64;
    }
    caps
}

/// Parse and validate WGSL with naga for the variant `flags`, returning naga's message on error.
pub fn validate(
    text: &str,
    flags: &Flags,
) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(text).map_err(|e| e.emit_to_string(text))?;
    let mut v =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(flags));
    v.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
    let info = v.validate(&module).map_err(|e| e.emit_to_string(text))?;
    Ok((module, info))
}

/// One declared variant: its extra flags, and whether it exists only with F16.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    pub flags: Vec<&'static str>,
    pub needs_f16: bool,
}

/// Variants a shader declares in header lines `// variants: A B+C` (each item one variant,
/// `+` joining flags; a name no `#if` tests, like PLAIN, is the build without extra flags) and
/// `// variants-f16: D+E` (variants that need the F16 build).
pub fn declared_variants(name: &str) -> Vec<Variant> {
    let Some(src) = source(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in src.lines().map(str::trim) {
        let (items, needs_f16) = if let Some(v) = line.strip_prefix("// variants-f16:") {
            (v, true)
        } else if let Some(v) = line.strip_prefix("// variants:") {
            (v, false)
        } else {
            continue;
        };
        for item in items.split_whitespace() {
            out.push(Variant {
                flags: item.split('+').collect(),
                needs_f16,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_picks_branches() {
        let src = "a\n#if F16\nb\n#else\nc\n#endif\n#if !SUBGROUP\nd\n#endif\n";
        let flags: Flags = ["F16"].into_iter().collect();
        let out = preprocess(src, &flags).unwrap();
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, ["a", "b", "d"]);
        let out = preprocess(src, &Flags::new()).unwrap();
        let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, ["a", "c", "d"]);
    }

    #[test]
    fn preprocess_nested_and_errors() {
        let src = "#if A\n#if B\nab\n#else\na!b\n#endif\n#endif\n";
        let flags: Flags = ["A"].into_iter().collect();
        assert_eq!(preprocess(src, &flags).unwrap().trim(), "a!b");
        assert!(preprocess("#if A\n", &flags).is_err());
        assert!(preprocess("#endif\n", &flags).is_err());
        assert!(preprocess("#define X\n", &flags).is_err());
    }
}
