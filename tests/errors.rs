//! Errors, never panics: bad device choices, shapes, missing features, oversized tensors,
//! validation errors and a lost device all come back as typed errors naming what was wrong.

mod common;

use common::{for_each_gpu, gpus};
use tokenmill::gpu::{BindingKind, DType, DeviceChoice, Gpu, GpuError, GpuOptions, PipelineKey};
use tokenmill::ops::Elementwise;

fn open(choice: DeviceChoice) -> Result<Gpu, GpuError> {
    Gpu::open_blocking(&GpuOptions {
        device: choice,
        ..Default::default()
    })
}

#[test]
fn unknown_device_index_and_name_are_typed_errors() {
    if gpus().is_empty() {
        return;
    }
    match open(DeviceChoice::Index(999)) {
        Err(GpuError::AdapterNotFound { query, available }) => {
            assert_eq!(query, "999");
            assert!(available.contains("0: "), "lists adapters: {available}");
        }
        other => panic!("expected AdapterNotFound, got {:?}", other.err()),
    }
    match open(DeviceChoice::Name("no-such-gpu-xyz".into())) {
        Err(GpuError::AdapterNotFound { query, .. }) => assert_eq!(query, "no-such-gpu-xyz"),
        other => panic!("expected AdapterNotFound, got {:?}", other.err()),
    }
    assert!(open("0".parse().unwrap()).is_ok());
}

#[test]
fn kernel_needing_a_missing_feature_is_refused() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        if gpu.caps.f16 {
            return;
        }
        let key = PipelineKey {
            shader: "elementwise",
            entry: "add",
            flags: ["F16"].into_iter().collect(),
            overrides: vec![],
        };
        let err = gpu
            .kernel("add_f16", &key, &[BindingKind::Uniform])
            .expect_err("refused");
        assert!(
            matches!(
                err,
                GpuError::MissingFeature {
                    kernel: "add_f16",
                    feature: "SHADER_F16",
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn wrong_sizes_and_dtypes_are_shape_errors() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let err = gpu
            .upload("w", &[3, 40], DType::Q4_0, &[0; 10])
            .expect_err("40 is not whole blocks");
        assert!(matches!(err, GpuError::Shape { kernel: "w", .. }), "{err}");
        let err = gpu
            .upload_f32("x", &[5], &[0.0; 4])
            .expect_err("byte count");
        assert!(err.to_string().contains("expected 20"), "{err}");
        let a = gpu.upload_f32("a", &[4], &[1.0; 4]).unwrap();
        let h = gpu.upload_f16("h", &[4], &[half::f16::ONE; 4]).unwrap();
        let err = Elementwise::Add
            .prepare(gpu, &a, &h, &a)
            .expect_err("dtype");
        assert!(err.to_string().contains("b is f16"), "{err}");
    });
}

#[test]
fn tensors_past_the_binding_limit_are_refused_or_chunked() {
    let gpu = Gpu::open_blocking(&GpuOptions {
        max_binding_size: Some(1 << 20),
        ..Default::default()
    });
    let Ok(gpu) = gpu else {
        return assert!(gpus().is_empty());
    };
    assert_eq!(gpu.caps.max_binding(), 1 << 20);
    let err = gpu
        .zeros("big", &[1 << 19], DType::F32)
        .expect_err("2 MiB > 1 MiB");
    assert!(
        matches!(
            err,
            GpuError::TooLarge {
                kernel: "big",
                limit_name: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{err}"
    );
    // The same data as a row-chunked tensor: 3 chunks of at most 1 MiB, rows intact.
    let bytes = vec![0u8; 600 * 1024 * 4];
    let t = gpu
        .upload_chunked("big", [600, 1024], DType::F32, &bytes)
        .unwrap();
    assert_eq!(t.chunks.len(), 3);
    assert_eq!(t.chunks.iter().map(|(_, c)| c.shape[0]).sum::<usize>(), 600);
    assert!(t.chunks.iter().all(|(_, c)| c.nbytes() <= 1 << 20));
    assert_eq!(t.chunks[1].0, 256);
}

#[test]
fn validation_errors_name_the_kernel() {
    for_each_gpu(|t| {
        let gpu = &t.gpu;
        let key = PipelineKey {
            shader: "elementwise",
            entry: "add",
            flags: Default::default(),
            overrides: vec![("WG", 64)],
        };
        let kernel = gpu
            .kernel(
                "add",
                &key,
                &[
                    BindingKind::Uniform,
                    BindingKind::ReadOnly,
                    BindingKind::ReadOnly,
                    BindingKind::ReadWrite,
                ],
            )
            .unwrap();
        let a = gpu.upload_f32("a", &[4], &[1.0; 4]).unwrap();
        // Binding a storage buffer where the layout wants a uniform is invalid.
        let err = gpu
            .dispatch(
                &kernel,
                &[a.binding(), a.binding(), a.binding(), a.binding()],
                [1, 1, 1],
            )
            .expect_err("invalid");
        assert!(
            matches!(&err, GpuError::Validation { kernel, .. } if kernel == "add"),
            "{err}"
        );
        // Too many workgroups for one dimension is caught before the GPU sees it.
        let err = gpu
            .dispatch(&kernel, &[], [u32::MAX, 1, 1])
            .expect_err("too many");
        assert!(
            matches!(
                err,
                GpuError::TooLarge {
                    limit_name: "max_compute_workgroups_per_dimension",
                    ..
                }
            ),
            "{err}"
        );
    });
}

#[test]
fn out_of_memory_maps_to_a_typed_error() {
    let err = GpuError::from_wgpu_for_test(
        "matvec",
        wgpu::Error::OutOfMemory {
            source: "no memory".into(),
        },
    );
    assert!(
        matches!(&err, GpuError::OutOfMemory { what } if what.contains("matvec")),
        "{err}"
    );
    // A buffer larger than the device allows is refused with a typed error, not a panic.
    for_each_gpu(|t| {
        let limit = t.gpu.caps.limits.max_buffer_size;
        let n = (limit / 4 + 1) as usize;
        assert!(t.gpu.zeros("huge", &[n], DType::F32).is_err());
    });
}

#[test]
fn a_lost_device_is_reported() {
    let Ok(gpu) = open(DeviceChoice::Auto) else {
        return assert!(gpus().is_empty());
    };
    let a = gpu.upload_f32("a", &[4], &[1.0; 4]).unwrap();
    let out = gpu.zeros("out", &[4], DType::F32).unwrap();
    let d = Elementwise::Add.prepare(&gpu, &a, &a, &out).unwrap();
    gpu.run(&[d]).unwrap();
    gpu.device.destroy();
    let d = Elementwise::Add.prepare(&gpu, &a, &a, &out);
    let err = d.and_then(|d| gpu.run(&[d])).expect_err("device destroyed");
    assert!(
        matches!(
            err,
            GpuError::DeviceLost { .. } | GpuError::Validation { .. }
        ),
        "{err}"
    );
    assert!(
        err.to_string().to_lowercase().contains("lost") || err.to_string().contains("destroyed"),
        "{err}"
    );
}

#[test]
fn pipeline_cache_is_written_and_reused() {
    let dir = std::env::temp_dir().join(format!("tokenmill-pcache-{}", std::process::id()));
    let opts = GpuOptions {
        pipeline_cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    let Ok(gpu) = Gpu::open_blocking(&opts) else {
        return assert!(gpus().is_empty());
    };
    if !gpu
        .device
        .features()
        .contains(wgpu::Features::PIPELINE_CACHE)
    {
        return;
    }
    let a = gpu.upload_f32("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
    let out = gpu.zeros("out", &[3], DType::F32).unwrap();
    gpu.run(&[Elementwise::Silu.prepare(&gpu, &a, &a, &out).unwrap()])
        .unwrap();
    gpu.save_pipeline_cache();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one cache file per adapter key");
    assert!(files[0].metadata().unwrap().len() > 0);
    drop(gpu);
    // A second start loads the data and still computes correctly.
    let gpu = Gpu::open_blocking(&opts).unwrap();
    let a = gpu.upload_f32("a", &[3], &[1.0, 2.0, 3.0]).unwrap();
    let out = gpu.zeros("out", &[3], DType::F32).unwrap();
    gpu.run(&[Elementwise::Silu.prepare(&gpu, &a, &a, &out).unwrap()])
        .unwrap();
    let got = gpu.read_f32(&out).unwrap();
    assert!((got[2] - 3.0 / (1.0 + (-3.0f32).exp())).abs() < 1e-5);
    let _ = std::fs::remove_dir_all(&dir);
}
