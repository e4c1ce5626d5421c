//! GGUF reader and llama config: the real SmolLM2 file, and bad inputs built here byte by byte.

#[path = "common/model_file.rs"]
mod model_file;

use tokenmill::gpu::DType;
use tokenmill::model::{
    Bf16As, GgmlType, Gguf, GgufFile, LlamaConfig, LoadError, MetaArray, MetaValue,
};

// ---- the real model ----

#[test]
fn smollm2_header_and_config() {
    let Some(path) = model_file::model_path() else {
        return;
    };
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment, 32);
    assert_eq!(f.tensors.len(), 272);
    assert_eq!(f.data_offset % 32, 0);
    assert_eq!(f.architecture().unwrap(), "llama");

    let cfg = LlamaConfig::from_gguf(&f).unwrap();
    assert_eq!(cfg.n_layers, 30);
    assert_eq!(cfg.n_embd, 576);
    assert_eq!(cfg.n_heads, 9);
    assert_eq!(cfg.n_kv_heads, 3);
    assert_eq!(cfg.head_dim, 64);
    assert_eq!(cfg.rope_dim, 64);
    assert_eq!(cfg.n_ff, 1536);
    assert_eq!(cfg.vocab_size, 49152);
    assert_eq!(cfg.context_length, 8192);
    assert_eq!(cfg.rope_theta, 100_000.0);
    assert!((cfg.rms_eps - 1e-5).abs() < 1e-9);
    assert!(cfg.tied_embeddings);
    assert_eq!(cfg.gqa_group(), 3);

    let embd = f.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.info.ty, GgmlType::Q8_0);
    assert_eq!(embd.info.dims, vec![576, 49152]);
    assert_eq!(embd.info.shape(), vec![49152, 576]);
    assert_eq!(embd.data.len() as u64, 49152 * 576 / 32 * 34);

    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.info.ty, GgmlType::Q4_1);
    let (dtype, bytes) = q.gpu_data(Bf16As::F32).unwrap();
    assert_eq!(dtype, DType::Q4_1);
    assert_eq!(bytes.len(), 576 * 576 / 32 * 20);
    let w = q.to_f32().unwrap();
    assert_eq!(w.len(), 576 * 576);
    assert!(w.iter().all(|x| x.is_finite()) && w.iter().any(|&x| x != 0.0));

    let norm = f.tensor("output_norm.weight").unwrap().to_f32().unwrap();
    assert_eq!(norm.len(), 576);
    assert!(norm.iter().all(|x| x.is_finite() && *x != 0.0));

    // Tensors do not overlap and all lie inside the file.
    let mut spans: Vec<_> = f.tensors.iter().map(|t| f.data_range(t)).collect();
    spans.sort_by_key(|r| r.start);
    for w in spans.windows(2) {
        assert!(w[0].end <= w[1].start);
    }
    assert!(spans.last().unwrap().end as u64 <= f.file_len);

    // The from-bytes path (browser) reads the same header.
    let bytes = std::fs::read(&path).unwrap();
    let g = GgufFile::from_bytes("smollm2.gguf", bytes).unwrap();
    assert_eq!(g.tensors, f.tensors);
    assert_eq!(g.metadata.len(), f.metadata.len());
    assert_eq!(
        g.tensor("blk.3.ffn_down.weight").unwrap().data,
        f.tensor("blk.3.ffn_down.weight").unwrap().data
    );
}

// ---- synthetic files ----

/// A metadata value to write.
#[derive(Clone)]
enum V {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    /// Element type id and elements.
    Arr(u32, Vec<V>),
}

fn s(x: &str) -> V {
    V::Str(x.into())
}

impl V {
    fn type_id(&self) -> u32 {
        match self {
            V::U8(_) => 0,
            V::I8(_) => 1,
            V::U16(_) => 2,
            V::I16(_) => 3,
            V::U32(_) => 4,
            V::I32(_) => 5,
            V::F32(_) => 6,
            V::Bool(_) => 7,
            V::Str(_) => 8,
            V::Arr(..) => 9,
            V::U64(_) => 10,
            V::I64(_) => 11,
            V::F64(_) => 12,
        }
    }

    fn write(&self, b: &mut Vec<u8>) {
        match self {
            V::U8(x) => b.push(*x),
            V::I8(x) => b.push(*x as u8),
            V::U16(x) => b.extend(x.to_le_bytes()),
            V::I16(x) => b.extend(x.to_le_bytes()),
            V::U32(x) => b.extend(x.to_le_bytes()),
            V::I32(x) => b.extend(x.to_le_bytes()),
            V::U64(x) => b.extend(x.to_le_bytes()),
            V::I64(x) => b.extend(x.to_le_bytes()),
            V::F32(x) => b.extend(x.to_le_bytes()),
            V::F64(x) => b.extend(x.to_le_bytes()),
            V::Bool(x) => b.push(*x as u8),
            V::Str(x) => put_str(b, x),
            V::Arr(t, items) => {
                b.extend(t.to_le_bytes());
                b.extend((items.len() as u64).to_le_bytes());
                for i in items {
                    i.write(b);
                }
            }
        }
    }
}

fn put_str(b: &mut Vec<u8>, x: &str) {
    b.extend((x.len() as u64).to_le_bytes());
    b.extend(x.as_bytes());
}

struct T {
    name: String,
    dims: Vec<u64>,
    ty: u32,
    /// `None`: placed after the previous tensor.
    offset: Option<u64>,
}

struct Spec {
    magic: [u8; 4],
    version: u32,
    kvs: Vec<(String, V)>,
    tensors: Vec<T>,
}

/// Bytes of a tensor of GGUF type `ty` (F32 and Q4_0 only; others count as empty).
fn type_bytes(ty: u32, n: u64) -> u64 {
    match ty {
        0 => n * 4,
        2 => n / 32 * 18,
        _ => 0,
    }
}

impl Spec {
    fn build(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.magic);
        b.extend(self.version.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend((self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut b, k);
            b.extend(v.type_id().to_le_bytes());
            v.write(&mut b);
        }
        let mut next = 0u64;
        let mut data_len = 0u64;
        for t in &self.tensors {
            put_str(&mut b, &t.name);
            b.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(t.ty.to_le_bytes());
            let n = t.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d));
            let off = t.offset.unwrap_or(next);
            b.extend(off.to_le_bytes());
            let size = type_bytes(t.ty, n);
            next = off
                .saturating_add(size)
                .checked_next_multiple_of(32)
                .unwrap_or(u64::MAX);
            data_len = data_len.max(next.min(1 << 20));
        }
        b.resize(b.len().next_multiple_of(32), 0);
        // Data: small ascending floats, so f32 tensors read back non-zero.
        let start = b.len();
        b.resize(start + data_len as usize, 0);
        for (i, c) in b[start..].chunks_exact_mut(4).enumerate() {
            c.copy_from_slice(&(1.0 + i as f32 / 1024.0).to_le_bytes());
        }
        b
    }

    fn kv(&mut self, key: &str, v: V) -> &mut Self {
        match self.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = v,
            None => self.kvs.push((key.into(), v)),
        }
        self
    }

    fn tensor(&mut self, name: &str) -> &mut T {
        self.tensors.iter_mut().find(|t| t.name == name).unwrap()
    }
}

/// A tiny but complete llama model: 2 layers, n_embd 64, 4 heads of 16, 2 KV heads, n_ff 96.
fn llama_spec() -> Spec {
    let (e, ff, v, q, kv) = (64u64, 96u64, 40u64, 64u64, 32u64);
    let mut kvs = vec![
        ("general.architecture".to_string(), s("llama")),
        ("general.name".into(), s("tiny")),
        ("llama.block_count".into(), V::U32(2)),
        ("llama.context_length".into(), V::U32(256)),
        ("llama.embedding_length".into(), V::U32(e as u32)),
        ("llama.feed_forward_length".into(), V::U32(ff as u32)),
        ("llama.attention.head_count".into(), V::U32(4)),
        ("llama.attention.head_count_kv".into(), V::U32(2)),
        ("llama.rope.freq_base".into(), V::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            V::F32(1e-6),
        ),
        ("llama.vocab_size".into(), V::U32(v as u32)),
    ];
    kvs.push((
        "tokenizer.ggml.tokens".into(),
        V::Arr(8, (0..v).map(|i| s(&format!("t{i}"))).collect()),
    ));
    let t = |name: &str, dims: Vec<u64>| T {
        name: name.into(),
        dims,
        ty: 0,
        offset: None,
    };
    let mut tensors = vec![
        t("token_embd.weight", vec![e, v]),
        t("output_norm.weight", vec![e]),
    ];
    for l in 0..2 {
        for (n, d) in [
            ("attn_norm", vec![e]),
            ("attn_q", vec![e, q]),
            ("attn_k", vec![e, kv]),
            ("attn_v", vec![e, kv]),
            ("attn_output", vec![q, e]),
            ("ffn_norm", vec![e]),
            ("ffn_gate", vec![e, ff]),
            ("ffn_up", vec![e, ff]),
            ("ffn_down", vec![ff, e]),
        ] {
            tensors.push(t(&format!("blk.{l}.{n}.weight"), d));
        }
    }
    Spec {
        magic: *b"GGUF",
        version: 3,
        kvs,
        tensors,
    }
}

fn parse(spec: &Spec) -> Result<Gguf, LoadError> {
    Gguf::parse("synthetic.gguf", &spec.build())
}

fn config(spec: &Spec) -> Result<LlamaConfig, LoadError> {
    LlamaConfig::from_gguf(&parse(spec)?)
}

#[test]
fn synthetic_llama_parses() {
    let mut spec = llama_spec();
    let g = parse(&spec).unwrap();
    assert_eq!(g.tensors.len(), 20);
    let cfg = LlamaConfig::from_gguf(&g).unwrap();
    assert_eq!((cfg.n_layers, cfg.n_embd, cfg.n_ff), (2, 64, 96));
    assert_eq!((cfg.n_heads, cfg.n_kv_heads, cfg.head_dim), (4, 2, 16));
    assert_eq!(cfg.vocab_size, 40);
    assert!(cfg.tied_embeddings);

    // With an output head it is untied; version 2 reads the same.
    spec.tensors.push(T {
        name: "output.weight".into(),
        dims: vec![64, 40],
        ty: 0,
        offset: None,
    });
    spec.version = 2;
    let cfg = config(&spec).unwrap();
    assert!(!cfg.tied_embeddings);

    let bytes = spec.build();
    let f = GgufFile::from_bytes("synthetic.gguf", bytes).unwrap();
    let norm = f.tensor("output_norm.weight").unwrap().to_f32().unwrap();
    assert_eq!(norm.len(), 64);
    assert!(norm.iter().all(|&x| x >= 1.0));
}

#[test]
fn every_value_type_round_trips() {
    let mut spec = llama_spec();
    let nested = V::Arr(
        9,
        vec![
            V::Arr(5, vec![V::I32(-1), V::I32(2)]),
            V::Arr(8, vec![s("x")]),
        ],
    );
    for (k, v) in [
        ("t.u8", V::U8(200)),
        ("t.i8", V::I8(-100)),
        ("t.u16", V::U16(60000)),
        ("t.i16", V::I16(-30000)),
        ("t.i32", V::I32(-7)),
        ("t.u64", V::U64(1 << 40)),
        ("t.i64", V::I64(-(1 << 40))),
        ("t.f64", V::F64(0.25)),
        ("t.bool", V::Bool(true)),
        ("t.f32s", V::Arr(6, vec![V::F32(0.5), V::F32(-1.5)])),
        ("t.nested", nested),
        ("t.empty", V::Arr(4, vec![])),
    ] {
        spec.kv(k, v);
    }
    let g = parse(&spec).unwrap();
    let m = &g.metadata;
    assert_eq!(m.get("t.u8"), Some(&MetaValue::U8(200)));
    assert_eq!(m.get("t.i8"), Some(&MetaValue::I8(-100)));
    assert_eq!(m.get("t.u16"), Some(&MetaValue::U16(60000)));
    assert_eq!(m.get("t.i16"), Some(&MetaValue::I16(-30000)));
    assert_eq!(m.get("t.i32"), Some(&MetaValue::I32(-7)));
    assert_eq!(m.u64("t.u64").unwrap(), 1 << 40);
    assert_eq!(m.get("t.i64"), Some(&MetaValue::I64(-(1 << 40))));
    assert_eq!(m.f64("t.f64").unwrap(), 0.25);
    assert_eq!(m.opt_bool("t.bool").unwrap(), Some(true));
    assert_eq!(m.array("t.f32s").unwrap(), &MetaArray::F32(vec![0.5, -1.5]));
    assert_eq!(
        m.array("t.nested").unwrap(),
        &MetaArray::Array(vec![
            MetaArray::I32(vec![-1, 2]),
            MetaArray::String(vec!["x".into()])
        ])
    );
    assert!(m.array("t.empty").unwrap().is_empty());
    assert_eq!(m.strings("tokenizer.ggml.tokens").unwrap().len(), 40);
    assert!(matches!(
        m.u64("t.i32"),
        Err(LoadError::WrongKeyType { .. })
    ));
    assert!(matches!(m.str("nope"), Err(LoadError::MissingKey { .. })));
}

#[test]
fn truncated_anywhere_is_an_error() {
    let bytes = llama_spec().build();
    let header_end = parse(&llama_spec()).unwrap().data_offset as usize;
    for cut in (0..header_end).chain([header_end + 1, bytes.len() - 1]) {
        match Gguf::parse("cut.gguf", &bytes[..cut]) {
            Err(LoadError::Truncated { file, .. }) => assert_eq!(file, "cut.gguf"),
            Err(LoadError::TensorPastEnd { .. }) if cut + 32 > header_end => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    let e = Gguf::parse("cut.gguf", &bytes[..10]).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn bad_magic_and_version() {
    let mut spec = llama_spec();
    spec.magic = *b"GGML";
    let e = parse(&spec).unwrap_err();
    assert!(
        matches!(e, LoadError::BadMagic { got, .. } if &got == b"GGML"),
        "{e}"
    );

    for (v, big_endian) in [(1u32, false), (4, false), (3u32.swap_bytes(), true)] {
        let mut spec = llama_spec();
        spec.version = v;
        let e = parse(&spec).unwrap_err();
        assert!(
            matches!(e, LoadError::UnsupportedVersion { version, .. } if version == v),
            "{e}"
        );
        assert_eq!(e.to_string().contains("big-endian"), big_endian, "{e}");
    }
}

#[test]
fn unknown_tensor_type_names_tensor_and_id() {
    let mut spec = llama_spec();
    spec.tensor("blk.1.ffn_up.weight").ty = 99;
    let e = parse(&spec).unwrap_err();
    match &e {
        LoadError::UnknownTensorType {
            tensor, type_id, ..
        } => {
            assert_eq!(tensor, "blk.1.ffn_up.weight");
            assert_eq!(*type_id, 99);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("blk.1.ffn_up.weight") && e.to_string().contains("99"));
}

#[test]
fn missing_tensor_is_named() {
    let mut spec = llama_spec();
    spec.tensors.retain(|t| t.name != "blk.1.attn_v.weight");
    let e = config(&spec).unwrap_err();
    assert!(
        matches!(&e, LoadError::MissingTensor { tensor, .. } if tensor == "blk.1.attn_v.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape_says_expected_and_got() {
    let mut spec = llama_spec();
    spec.tensor("blk.0.attn_k.weight").dims = vec![64, 64];
    let e = config(&spec).unwrap_err();
    match &e {
        LoadError::WrongShape {
            tensor,
            expected,
            got,
            ..
        } => {
            assert_eq!(tensor, "blk.0.attn_k.weight");
            assert_eq!(expected, &vec![64, 32]);
            assert_eq!(got, &vec![64, 64]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unsupported_architecture() {
    let mut spec = llama_spec();
    spec.kv("general.architecture", s("qwen2"));
    let e = config(&spec).unwrap_err();
    assert!(matches!(e, LoadError::UnsupportedArchitecture { .. }));
    assert!(
        e.to_string()
            .contains("unsupported architecture qwen2, expected llama"),
        "{e}"
    );
}

#[test]
fn bad_config_values() {
    let mut spec = llama_spec();
    spec.kv("llama.attention.head_count_kv", V::U32(3));
    assert!(matches!(config(&spec), Err(LoadError::BadConfig { .. })));

    let mut spec = llama_spec();
    spec.kv("llama.block_count", s("two"));
    let e = config(&spec).unwrap_err();
    assert!(
        matches!(&e, LoadError::WrongKeyType { key, .. } if key == "llama.block_count"),
        "{e}"
    );

    let mut spec = llama_spec();
    spec.kvs.retain(|(k, _)| k != "llama.embedding_length");
    assert!(matches!(config(&spec), Err(LoadError::MissingKey { .. })));
}

#[test]
fn size_and_placement_errors() {
    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").dims = vec![u64::MAX / 2, 4];
    assert!(matches!(parse(&spec), Err(LoadError::SizeOverflow { .. })));

    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").offset = Some(1 << 30);
    let e = parse(&spec).unwrap_err();
    assert!(
        matches!(&e, LoadError::TensorPastEnd { tensor, .. } if tensor == "output_norm.weight"),
        "{e}"
    );

    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").offset = Some(u64::MAX / 32 * 32);
    assert!(matches!(parse(&spec), Err(LoadError::TensorPastEnd { .. })));

    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").offset = Some(4);
    assert!(matches!(
        parse(&spec),
        Err(LoadError::MisalignedTensor { .. })
    ));

    let mut spec = llama_spec();
    spec.kv("general.alignment", V::U32(24));
    assert!(matches!(
        parse(&spec),
        Err(LoadError::BadAlignment { alignment: 24, .. })
    ));

    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").dims = vec![64, 1, 1, 1, 1];
    assert!(matches!(
        parse(&spec),
        Err(LoadError::TooManyDims { n_dims: 5, .. })
    ));

    let mut spec = llama_spec();
    let t = spec.tensor("output_norm.weight");
    t.ty = 2;
    t.dims = vec![48];
    assert!(matches!(
        parse(&spec),
        Err(LoadError::NotBlockAligned {
            row: 48,
            block: 32,
            ..
        })
    ));

    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").name = "token_embd.weight".into();
    assert!(matches!(parse(&spec), Err(LoadError::Duplicate { .. })));

    let mut spec = llama_spec();
    spec.kvs.push(("general.name".into(), s("again")));
    assert!(matches!(parse(&spec), Err(LoadError::Duplicate { .. })));
}

#[test]
fn unsupported_tensor_type_for_gpu_is_typed() {
    let mut spec = llama_spec();
    spec.tensor("output_norm.weight").ty = 12; // q4_k: known layout, no kernel yet
    spec.tensor("output_norm.weight").dims = vec![256];
    let f = GgufFile::from_bytes("k.gguf", spec.build()).unwrap();
    let t = f.tensor("output_norm.weight").unwrap();
    assert_eq!(t.info.ty, GgmlType::Q4K);
    let e = t.gpu_data(Bf16As::F16).unwrap_err();
    assert!(
        matches!(e, LoadError::WrongTensorType { got: "q4_k", .. }),
        "{e}"
    );
}

#[test]
fn corrupted_headers_never_panic() {
    let clean = llama_spec().build();
    let header_end = parse(&llama_spec()).unwrap().data_offset as usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = clean.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % header_end as u64) as usize;
            bytes[i] = next() as u8;
        }
        if let Ok(g) = Gguf::parse("fuzz.gguf", &bytes) {
            let _ = LlamaConfig::from_gguf(&g);
        }
    }
}
