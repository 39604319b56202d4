//! `brain::targets`: per-layer CLIP files fused into the detail and semantic targets and
//! captions averaged, streamed in blocks. Synthetic layer files (25 layers of [7, 5, 3])
//! with values whose mean is known exactly, a direct in-test computation, identical
//! files for every block size, f16/f64 inputs, and errors that name the file and leave
//! no temporary file behind.

use brain::io::npy::{encode_f32, read_f32, read_info, write_f32, Int16Scale};
use brain::targets::{
    average_captions, average_captions_with, fuse_vision_layers, layer_path, FuseReport,
    DETAIL_FILE, SEMANTIC_FILE,
};
use brain::Error;
use std::path::{Path, PathBuf};

const SHAPE: [usize; 3] = [7, 5, 3];
const N: usize = 7 * 5 * 3;
const LAYERS: std::ops::RangeInclusive<usize> = 1..=25;

/// Element type of a synthetic file.
#[derive(Clone, Copy)]
enum Ty {
    F32,
    F64,
    F16,
}

/// A C-order `.npy` of `shape` holding `data` as `ty` (f32 through the library's writer,
/// the others with a hand-written header).
fn write_as(path: &Path, shape: &[usize], data: &[f32], ty: Ty) {
    let (descr, bytes): (&str, Vec<u8>) = match ty {
        Ty::F32 => return write_f32(path, shape, data).unwrap(),
        Ty::F64 => (
            "<f8",
            data.iter()
                .flat_map(|&v| (v as f64).to_le_bytes())
                .collect(),
        ),
        Ty::F16 => (
            "<f2",
            data.iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        ),
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.as_slice() {
        [d] => format!("({d},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&bytes);
    std::fs::write(path, b).unwrap();
}

/// Values with an exactly known detail mean (`i / 2`) that f16 holds exactly: inside
/// 11..=20 the layer term `(k - 15.5)·c` sums to zero; outside, `-4k - i/4`.
fn exact(k: usize, i: usize) -> f32 {
    if (11..=20).contains(&k) {
        i as f32 * 0.5 + (k as f32 - 15.5) * ((i % 7) as f32 - 3.0)
    } else {
        -(k as f32) * 4.0 - i as f32 * 0.25
    }
}

/// Irregular values (not exact in binary), for the direct computation.
fn irregular(k: usize, i: usize) -> f32 {
    ((k * 31 + i * 17) % 97) as f32 / 7.0 - 3.3 + (k as f32).sqrt() * 1e-3
}

fn layer(f: fn(usize, usize) -> f32, k: usize) -> Vec<f32> {
    (0..N).map(|i| f(k, i)).collect()
}

/// A folder of layers 1..=25 of [`SHAPE`] holding `f`, written as `ty`.
fn layers_dir(f: fn(usize, usize) -> f32, ty: Ty) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for k in LAYERS {
        let p = d.path().join(format!("clip_vision_layer{k}.npy"));
        write_as(&p, &SHAPE, &layer(f, k), ty);
    }
    d
}

/// The mean of layers `first..=last` computed here: f64 sum in layer order, one division.
fn direct_mean(f: fn(usize, usize) -> f32, first: usize, last: usize) -> Vec<f32> {
    (0..N)
        .map(|i| {
            let s: f64 = (first..=last).map(|k| f(k, i) as f64).sum();
            (s / (last - first + 1) as f64) as f32
        })
        .collect()
}

fn fuse(dir: &Path, out: &Path, block: usize) -> brain::Result<FuseReport> {
    fuse_vision_layers(dir, 11, 20, 24, out, block, &mut |_, _| {})
}

fn read(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = read_f32(path, Int16Scale::AsIs).unwrap();
    (a.shape, a.data)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_no_temp(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    let l = listing(dir);
    assert!(l.iter().all(|n| !n.contains(".tmp")), "left behind: {l:?}");
}

/// `r` is an error about `path` whose text contains every `needle`.
fn expect_err<T: std::fmt::Debug>(r: brain::Result<T>, path: &Path, needles: &[&str]) {
    let e = r.expect_err("an error");
    let named = match &e {
        Error::Format { path, .. } | Error::Io { path, .. } => path.clone(),
        other => panic!("expected a file error, got {other:?}"),
    };
    assert_eq!(named, path, "error names the wrong file: {e}");
    let shown = e.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    for n in needles {
        assert!(shown.contains(n), "`{shown}` lacks `{n}`");
    }
}

#[test]
fn detail_is_the_exact_mean_and_semantic_is_layer_24() {
    let d = layers_dir(exact, Ty::F32);
    let out = tempfile::tempdir().unwrap();
    let r = fuse(d.path(), out.path(), 3).unwrap();
    assert_eq!(r.shape, SHAPE.to_vec());
    assert_eq!(r.detail, out.path().join(DETAIL_FILE));
    assert_eq!(r.semantic, out.path().join(SEMANTIC_FILE));
    assert_eq!(r.semantic_layer, d.path().join("clip_vision_layer24.npy"));
    let want: Vec<PathBuf> = (11..=20)
        .map(|k| d.path().join(format!("clip_vision_layer{k}.npy")))
        .collect();
    assert_eq!(r.detail_layers, want);

    let (shape, detail) = read(&r.detail);
    assert_eq!(shape, SHAPE.to_vec());
    let half_i: Vec<f32> = (0..N).map(|i| i as f32 * 0.5).collect();
    assert_eq!(detail, half_i);
    let (shape, sem) = read(&r.semantic);
    assert_eq!(shape, SHAPE.to_vec());
    assert_eq!(sem, layer(exact, 24));
    assert_eq!(listing(out.path()), vec![DETAIL_FILE, SEMANTIC_FILE]);
}

#[test]
fn every_block_size_writes_the_same_file_as_the_direct_computation() {
    let d = layers_dir(irregular, Ty::F32);
    let want_detail = encode_f32(&SHAPE, &direct_mean(irregular, 11, 20)).unwrap();
    let want_sem = encode_f32(&SHAPE, &layer(irregular, 24)).unwrap();
    for block in [0, 1, 2, 3, 6, 7, 8, 1000, usize::MAX] {
        let out = tempfile::tempdir().unwrap();
        fuse(d.path(), out.path(), block).unwrap();
        let detail = std::fs::read(out.path().join(DETAIL_FILE)).unwrap();
        let sem = std::fs::read(out.path().join(SEMANTIC_FILE)).unwrap();
        assert!(detail == want_detail, "detail differs with block {block}");
        assert!(sem == want_sem, "semantic differs with block {block}");
    }
    // Another range, and a semantic layer inside it (read once per block).
    let out = tempfile::tempdir().unwrap();
    fuse_vision_layers(d.path(), 10, 20, 20, out.path(), 4, &mut |_, _| {}).unwrap();
    assert_eq!(
        read(&out.path().join(DETAIL_FILE)).1,
        direct_mean(irregular, 10, 20)
    );
    assert_eq!(
        read(&out.path().join(SEMANTIC_FILE)).1,
        layer(irregular, 20)
    );
    // A single layer is copied.
    let out = tempfile::tempdir().unwrap();
    fuse_vision_layers(d.path(), 24, 24, 24, out.path(), 2, &mut |_, _| {}).unwrap();
    assert_eq!(read(&out.path().join(DETAIL_FILE)).1, layer(irregular, 24));
}

#[test]
fn f16_f64_and_mixed_inputs_give_the_f32_result() {
    let reference = {
        let d = layers_dir(exact, Ty::F32);
        let out = tempfile::tempdir().unwrap();
        fuse(d.path(), out.path(), 2).unwrap();
        (
            std::fs::read(out.path().join(DETAIL_FILE)).unwrap(),
            std::fs::read(out.path().join(SEMANTIC_FILE)).unwrap(),
        )
    };
    let mixed = layers_dir(exact, Ty::F32);
    for k in LAYERS.step_by(2) {
        let p = mixed.path().join(format!("clip_vision_layer{k}.npy"));
        let ty = if k % 4 == 1 { Ty::F16 } else { Ty::F64 };
        write_as(&p, &SHAPE, &layer(exact, k), ty);
    }
    for d in [
        layers_dir(exact, Ty::F16),
        layers_dir(exact, Ty::F64),
        mixed,
    ] {
        let out = tempfile::tempdir().unwrap();
        fuse(d.path(), out.path(), 3).unwrap();
        let detail = std::fs::read(out.path().join(DETAIL_FILE)).unwrap();
        let sem = std::fs::read(out.path().join(SEMANTIC_FILE)).unwrap();
        assert!(detail == reference.0 && sem == reference.1);
    }
    // f64 irregular values: rounded to f32 on read, then the same mean.
    let d = layers_dir(irregular, Ty::F64);
    let out = tempfile::tempdir().unwrap();
    fuse(d.path(), out.path(), 5).unwrap();
    assert_eq!(
        read(&out.path().join(DETAIL_FILE)).1,
        direct_mean(irregular, 11, 20)
    );
}

#[test]
fn zero_padded_names_are_found_and_duplicates_refused() {
    let d = tempfile::tempdir().unwrap();
    for k in 1..=12 {
        let p = d.path().join(format!("clip_vision_layer{k:02}.npy"));
        write_as(&p, &SHAPE, &layer(irregular, k), Ty::F32);
    }
    assert_eq!(
        layer_path(d.path(), 7).unwrap(),
        d.path().join("clip_vision_layer07.npy")
    );
    let out = tempfile::tempdir().unwrap();
    let r = fuse_vision_layers(d.path(), 3, 12, 9, out.path(), 4, &mut |_, _| {}).unwrap();
    assert_eq!(r.semantic_layer, d.path().join("clip_vision_layer09.npy"));
    assert_eq!(read(&r.detail).1, direct_mean(irregular, 3, 12));
    assert_eq!(read(&r.semantic).1, layer(irregular, 9));

    // Layer 5 as both `5` and `05`: ambiguous.
    let p5 = d.path().join("clip_vision_layer5.npy");
    write_as(&p5, &SHAPE, &layer(irregular, 5), Ty::F32);
    let out = tempfile::tempdir().unwrap();
    let r = fuse_vision_layers(d.path(), 3, 12, 9, out.path(), 4, &mut |_, _| {});
    expect_err(
        r,
        &d.path().join("clip_vision_layer05.npy"),
        &["layer 5", "clip_vision_layer5.npy", "twice"],
    );
    assert!(listing(out.path()).is_empty());
}

#[test]
fn a_shape_mismatch_names_the_odd_file_and_writes_nothing() {
    // Wrong token count on a middle layer, the first layer and the semantic layer, and a
    // wrong trial count: the odd file is named, not the reference.
    let cases: [(usize, [usize; 3]); 4] = [
        (13, [7, 5, 4]),
        (11, [7, 6, 3]),
        (24, [7, 3, 5]),
        (20, [6, 5, 3]),
    ];
    for (k, shape) in cases {
        let d = layers_dir(exact, Ty::F32);
        let p = d.path().join(format!("clip_vision_layer{k}.npy"));
        let n: usize = shape.iter().product();
        write_as(&p, &shape, &vec![1.0; n], Ty::F32);
        let out = tempfile::tempdir().unwrap();
        let dims: Vec<String> = shape.iter().map(|v| v.to_string()).collect();
        expect_err(
            fuse(d.path(), out.path(), 2),
            &p,
            &[&format!("[{}]", dims.join(", ")), "[7, 5, 3]", "same shape"],
        );
        assert!(listing(out.path()).is_empty());
    }
}

#[test]
fn a_missing_layer_is_named() {
    for k in [17, 11, 24] {
        let d = layers_dir(exact, Ty::F32);
        let p = d.path().join(format!("clip_vision_layer{k}.npy"));
        std::fs::remove_file(&p).unwrap();
        let out = d.path().join("out");
        expect_err(
            fuse(d.path(), &out, 2),
            &p,
            &[&format!("layer {k} is missing"), "layers 1, 2,"],
        );
        assert!(
            !out.exists(),
            "nothing is created before the inputs are checked"
        );
    }
    // Layers above what the folder holds.
    let d = layers_dir(exact, Ty::F32);
    let out = tempfile::tempdir().unwrap();
    let r = fuse_vision_layers(d.path(), 11, 20, 32, out.path(), 2, &mut |_, _| {});
    expect_err(r, &d.path().join("clip_vision_layer32.npy"), &["missing"]);
    // An empty folder.
    let empty = tempfile::tempdir().unwrap();
    let r = fuse(empty.path(), out.path(), 2);
    expect_err(
        r,
        &empty.path().join("clip_vision_layer11.npy"),
        &["missing"],
    );
    assert!(listing(out.path()).is_empty());
}

#[test]
fn an_unwritable_output_is_named_and_leaves_no_temporary_file() {
    let d = layers_dir(exact, Ty::F32);
    // out_dir is a regular file.
    let blocker = d.path().join("not_a_dir");
    std::fs::write(&blocker, b"x").unwrap();
    expect_err(fuse(d.path(), &blocker, 2), &blocker, &[]);
    expect_err(
        fuse(d.path(), &blocker.join("sub"), 2),
        &blocker.join("sub"),
        &[],
    );

    // The detail output's name is taken by a folder: the rename fails at the very end.
    let out = tempfile::tempdir().unwrap();
    let taken = out.path().join(DETAIL_FILE);
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep"), b"k").unwrap();
    let old_sem = out.path().join(SEMANTIC_FILE);
    std::fs::write(&old_sem, b"previous").unwrap();
    expect_err(fuse(d.path(), out.path(), 2), &taken, &[]);
    assert_eq!(listing(out.path()), vec![DETAIL_FILE, SEMANTIC_FILE]);
    assert_no_temp(out.path());
    assert_eq!(std::fs::read(&old_sem).unwrap(), b"previous");
}

#[test]
fn a_bad_value_mid_stream_removes_the_temporary_files() {
    let d = layers_dir(exact, Ty::F32);
    let p = d.path().join("clip_vision_layer18.npy");
    let mut v = layer(exact, 18);
    v[5 * 15 + 4] = f32::NAN; // trial 5, token 1, dim 1
    write_f32(&p, &SHAPE, &v).unwrap();
    let out = tempfile::tempdir().unwrap();
    let old = out.path().join(DETAIL_FILE);
    std::fs::write(&old, b"previous").unwrap();
    let mut seen = Vec::new();
    let r = fuse_vision_layers(d.path(), 11, 20, 24, out.path(), 2, &mut |a, b| {
        seen.push((a, b))
    });
    expect_err(r, &p, &["NaN", "trial 5", "[1, 1]"]);
    assert_eq!(
        seen,
        vec![(0, 7), (2, 7), (4, 7)],
        "two blocks were written"
    );
    assert_eq!(listing(out.path()), vec![DETAIL_FILE]);
    assert_eq!(std::fs::read(&old).unwrap(), b"previous");

    // Infinity in the semantic layer, outside the detail range.
    let d = layers_dir(exact, Ty::F32);
    let p = d.path().join("clip_vision_layer24.npy");
    let mut v = layer(exact, 24);
    v[N - 1] = f32::INFINITY;
    write_f32(&p, &SHAPE, &v).unwrap();
    let out = tempfile::tempdir().unwrap();
    expect_err(fuse(d.path(), out.path(), 3), &p, &["inf", "trial 6"]);
    assert!(listing(out.path()).is_empty());
}

#[test]
fn progress_counts_trials_up_to_the_total() {
    let d = layers_dir(exact, Ty::F32);
    for (block, want) in [
        (3, vec![(0, 7), (3, 7), (6, 7), (7, 7)]),
        (1, (0..=7).map(|i| (i, 7)).collect()),
        (50, vec![(0, 7), (7, 7)]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        fuse_vision_layers(d.path(), 11, 20, 24, out.path(), block, &mut |a, b| {
            seen.push((a, b))
        })
        .unwrap();
        assert_eq!(seen, want, "block {block}");
    }
}

#[test]
fn inputs_that_are_not_float_token_arrays_are_refused() {
    // int16 (NSD betas' type) is not a CLIP embedding.
    let d = layers_dir(exact, Ty::F32);
    let p = d.path().join("clip_vision_layer15.npy");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    let mut h = "{'descr': '<i2', 'fortran_order': False, 'shape': (7, 5, 3), }".to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(&vec![0u8; N * 2]);
    std::fs::write(&p, b).unwrap();
    let out = tempfile::tempdir().unwrap();
    expect_err(fuse(d.path(), out.path(), 2), &p, &["int16"]);

    // Pooled [trials, dim] embeddings.
    let d = layers_dir(exact, Ty::F32);
    let p = d.path().join("clip_vision_layer12.npy");
    write_f32(&p, &[7, 15], &layer(exact, 12)).unwrap();
    expect_err(
        fuse(d.path(), out.path(), 2),
        &p,
        &["[7, 15]", "[trials, tokens, dim]"],
    );

    // A truncated file (the reader's own check).
    let p = d.path().join("clip_vision_layer12.npy");
    let full = encode_f32(&SHAPE, &layer(exact, 12)).unwrap();
    std::fs::write(&p, &full[..full.len() - 4]).unwrap();
    expect_err(fuse(d.path(), out.path(), 2), &p, &["truncated"]);

    // An empty range and a folder that is not there.
    let r = fuse_vision_layers(d.path(), 20, 11, 24, out.path(), 2, &mut |_, _| {});
    expect_err(r, d.path(), &["20..=11"]);
    let gone = d.path().join("nope");
    expect_err(fuse(&gone, out.path(), 2), &gone, &["not a folder"]);
    assert!(listing(out.path()).is_empty());
}

#[test]
fn zero_trials_write_empty_arrays() {
    let d = tempfile::tempdir().unwrap();
    for k in 11..=24 {
        let p = d.path().join(format!("clip_vision_layer{k}.npy"));
        write_f32(&p, &[0, 5, 3], &[]).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let r = fuse_vision_layers(d.path(), 11, 20, 24, out.path(), 4, &mut |a, b| {
        seen.push((a, b))
    })
    .unwrap();
    assert_eq!(seen, vec![(0, 0)]);
    assert_eq!(read(&r.detail), (vec![0, 5, 3], vec![]));
    assert_eq!(read(&r.semantic), (vec![0, 5, 3], vec![]));
}

/// Caption values [trials, captions, tokens, dim] = [5, 3, 4, 2].
fn caption(t: usize, c: usize, j: usize) -> f32 {
    ((t * 7 + c * 3 + j) % 11) as f32 * 0.75 - 2.0
}

#[test]
fn captions_are_averaged_in_blocks() {
    let (trials, caps, w) = (5, 3, 8);
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<f32> = (0..trials)
        .flat_map(|t| (0..caps).flat_map(move |c| (0..w).map(move |j| caption(t, c, j))))
        .collect();
    let want: Vec<f32> = (0..trials)
        .flat_map(|t| {
            (0..w).map(move |j| {
                let s: f64 = (0..caps).map(|c| caption(t, c, j) as f64).sum();
                (s / caps as f64) as f32
            })
        })
        .collect();
    let want_bytes = encode_f32(&[5, 4, 2], &want).unwrap();
    for ty in [Ty::F32, Ty::F16, Ty::F64] {
        let input = dir.path().join("clip_text.npy");
        write_as(&input, &[5, 3, 4, 2], &data, ty);
        let out = dir.path().join("avg").join("clip_text.npy");
        let r = average_captions(&input, &out).unwrap();
        assert_eq!(r.captions, 3);
        assert_eq!(r.shape, vec![5, 4, 2]);
        assert!(std::fs::read(&out).unwrap() == want_bytes);
        for block in [1, 2, 5, 9] {
            let mut seen = Vec::new();
            average_captions_with(&input, &out, block, &mut |a, b| seen.push((a, b))).unwrap();
            assert!(std::fs::read(&out).unwrap() == want_bytes, "block {block}");
            assert_eq!(seen.first(), Some(&(0, 5)));
            assert_eq!(seen.last(), Some(&(5, 5)));
            assert_eq!(seen.len(), 5usize.div_ceil(block.min(5)) + 1);
        }
        assert_no_temp(&dir.path().join("avg"));
    }
    // In place: the input is replaced only once it has been read.
    let input = dir.path().join("clip_text.npy");
    write_as(&input, &[5, 3, 4, 2], &data, Ty::F32);
    average_captions_with(&input, &input, 2, &mut |_, _| {}).unwrap();
    assert!(std::fs::read(&input).unwrap() == want_bytes);
    assert_eq!(read_info(&input).unwrap().shape, vec![5, 4, 2]);
}

#[test]
fn caption_files_of_the_wrong_shape_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").join("avg.npy");
    // Already averaged.
    let p = dir.path().join("three.npy");
    write_f32(&p, &[5, 4, 2], &[0.5; 40]).unwrap();
    expect_err(
        average_captions(&p, &out),
        &p,
        &["[5, 4, 2]", "[trials, captions, tokens, dim]"],
    );
    // No captions.
    let p = dir.path().join("none.npy");
    write_f32(&p, &[5, 0, 4, 2], &[]).unwrap();
    expect_err(average_captions(&p, &out), &p, &["no captions"]);
    // NaN in the last trial: the temporary file is removed.
    let p = dir.path().join("nan.npy");
    let mut v = vec![0.5; 5 * 3 * 8];
    v[4 * 24 + 2 * 8 + 7] = f32::NAN;
    write_f32(&p, &[5, 3, 4, 2], &v).unwrap();
    expect_err(
        average_captions_with(&p, &out, 2, &mut |_, _| {}),
        &p,
        &["NaN", "trial 4", "[2, 3, 1]"],
    );
    assert!(!out.exists());
    assert_no_temp(&dir.path().join("out"));
    // Missing input.
    let p = dir.path().join("absent.npy");
    expect_err(average_captions(&p, &out), &p, &[]);
}
