//! Portability: every shader variant goes through naga to SPIR-V, MSL, HLSL and GLSL (compute),
//! validated with only the capabilities that variant may use. This is how we know the kernels
//! are legal for Metal and DX12 without those machines.

use naga::back;
use tokenmill::gpu::shader::{self, Flags, SHADERS};

/// Every variant of a shader: {plain, F16, SUBGROUP, F16+SUBGROUP} x (each declared variant,
/// or none when the shader declares no variants). A declared variant that names F16 or
/// SUBGROUP itself (or comes from `variants-f16:`) is built only where those are on.
fn variants(name: &'static str) -> Vec<Flags> {
    let mut declared = shader::declared_variants(name);
    if declared.is_empty() {
        declared.push(shader::Variant {
            flags: vec![],
            needs_f16: false,
        });
    }
    let mut out = Vec::new();
    for f16 in [false, true] {
        for sg in [false, true] {
            let fits = |v: &&shader::Variant| {
                (f16 || !(v.needs_f16 || v.flags.contains(&"F16")))
                    && (sg || !v.flags.contains(&"SUBGROUP"))
            };
            for v in declared.iter().filter(fits) {
                let mut flags: Flags = v.flags.iter().copied().collect();
                if f16 {
                    flags.insert("F16");
                }
                if sg {
                    flags.insert("SUBGROUP");
                }
                out.push(flags);
            }
        }
    }
    out
}

fn translate(name: &str, flags: &Flags) -> Result<usize, String> {
    let text = shader::assemble(name, flags)?;
    let (module, info) = shader::validate(&text, flags)?;
    let constants = back::PipelineConstants::default();
    let mut outputs = 0;
    for ep in module
        .entry_points
        .iter()
        .filter(|e| e.stage == naga::ShaderStage::Compute)
    {
        let entry = Some((naga::ShaderStage::Compute, ep.name.as_str()));
        let (module, info) =
            back::pipeline_constants::process_overrides(&module, &info, entry, &constants)
                .map_err(|e| format!("{}: overrides: {e}", ep.name))?;
        let err = |lang: &str, e: &dyn std::fmt::Display| format!("{} -> {lang}: {e}", ep.name);

        let spv_opts = back::spv::Options::default();
        let spv_pipe = back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: ep.name.clone(),
        };
        let words = back::spv::write_vec(&module, &info, &spv_opts, Some(&spv_pipe))
            .map_err(|e| err("SPIR-V", &e))?;
        assert!(words.len() > 5 && words[0] == 0x0723_0203, "SPIR-V magic");

        let msl_opts = back::msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        let msl_pipe = back::msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, ep.name.clone())),
            ..Default::default()
        };
        let (msl, _) = back::msl::write_string(&module, &info, &msl_opts, &msl_pipe)
            .map_err(|e| err("MSL", &e))?;
        assert!(msl.contains("kernel"), "MSL has a kernel");

        let hlsl_opts = back::hlsl::Options {
            shader_model: back::hlsl::ShaderModel::V6_2,
            ..Default::default()
        };
        let hlsl_pipe = back::hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, ep.name.clone())),
        };
        let mut hlsl = String::new();
        back::hlsl::Writer::new(&mut hlsl, &hlsl_opts, &hlsl_pipe)
            .write(&module, &info, None)
            .map_err(|e| err("HLSL", &e))?;
        assert!(hlsl.contains("numthreads"), "HLSL has numthreads");

        // GL has neither f16 storage nor (in wgpu) subgroups or 64-bit integers: only the
        // fallback goes there.
        if !["F16", "SUBGROUP", "INT64"]
            .iter()
            .any(|f| flags.contains(f))
        {
            let glsl_opts = back::glsl::Options {
                version: back::glsl::Version::Desktop(430),
                ..Default::default()
            };
            let glsl_pipe = back::glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut glsl = String::new();
            back::glsl::Writer::new(
                &mut glsl,
                &module,
                &info,
                &glsl_opts,
                &glsl_pipe,
                Default::default(),
            )
            .and_then(|mut w| w.write())
            .map_err(|e| err("GLSL", &e))?;
            assert!(glsl.contains("local_size_x"), "GLSL has a workgroup size");
        }
        outputs += 1;
    }
    if outputs == 0 {
        return Err("no compute entry points".into());
    }
    Ok(outputs)
}

#[test]
fn every_shader_variant_translates_to_every_backend() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, _) in SHADERS.iter().filter(|(n, _)| *n != "common") {
        for flags in variants(name) {
            match translate(name, &flags) {
                Ok(n) => checked += n,
                Err(e) => failures.push(format!("{name} {flags:?}: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} variant(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= 6 * 4, "only {checked} entry points checked");
}

#[test]
fn fallback_variants_may_not_use_f16() {
    // A shader using f16 without the F16 flag must be rejected, or the check above proves nothing.
    let flags = Flags::new();
    let text = "@compute @workgroup_size(1) fn main() { let x: f16 = 1.0h; }";
    assert!(shader::validate(text, &flags).is_err());
    let text = "enable f16;\n@compute @workgroup_size(1) fn main() { let x: f16 = 1.0h; }";
    assert!(shader::validate(text, &["F16"].into_iter().collect()).is_ok());
}
