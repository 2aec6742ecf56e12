//! IDX writer/reader round trips, and the parser's robustness to arbitrary bytes.

use std::path::{Path, PathBuf};

use coinfer_data::idx::{self, IdxImages};
use proptest::prelude::*;

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coinfer-data-idx");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn gz_round_trip_preserves_images_and_labels() {
    let images = IdxImages {
        pixels: (0..5 * 28 * 28).map(|i| (i * 7 % 256) as u8).collect(),
        count: 5,
        rows: 28,
        cols: 28,
    };
    let labels = vec![9, 0, 0, 3, 1];
    let (ip, lp) = (tmp("rt-images.gz"), tmp("rt-labels.gz"));
    idx::write_gz_images(&ip, &images).unwrap();
    idx::write_gz_labels(&lp, &labels).unwrap();
    assert_eq!(std::fs::read(&ip).unwrap()[..2], [0x1f, 0x8b]);
    assert_eq!(idx::read_images(&ip).unwrap(), images);
    assert_eq!(idx::read_labels(&lp).unwrap(), labels);

    let ds = idx::read_dataset(&ip, &lp, 10).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.image_shape(), [1, 28, 28]);
    assert_eq!(ds.image(3), &images.pixels[3 * 784..4 * 784]);
    assert_eq!(ds.labels(), labels.as_slice());
}

#[test]
fn writer_is_deterministic() {
    let (a, b) = (tmp("det-a.gz"), tmp("det-b.gz"));
    idx::write_gz_labels(&a, &[1, 2, 3]).unwrap();
    idx::write_gz_labels(&b, &[1, 2, 3]).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn plain_files_are_accepted() {
    let gz = tmp("plain-src.gz");
    idx::write_gz_labels(&gz, &[4, 2]).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap()),
        &mut raw,
    )
    .unwrap();
    let plain = tmp("plain-labels.idx");
    std::fs::write(&plain, &raw).unwrap();
    assert_eq!(idx::read_labels(&plain).unwrap(), vec![4, 2]);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let path = Path::new("random.idx");
        let _ = idx::parse_images(&bytes, path);
        let _ = idx::parse_labels(&bytes, path);
        // Behind a valid gzip layer, and behind the gzip magic alone.
        let _ = idx::parse_images(&gzip(&bytes), path);
        let mut fake = vec![0x1f, 0x8b];
        fake.extend_from_slice(&bytes);
        let _ = idx::parse_labels(&fake, path);
    }

    /// Headers built on purpose: a valid image file (magic 3, body of exactly count·rows·cols
    /// bytes), the same with the body cut short or one byte too long, with another magic, and
    /// with zero rows or columns. Each case must give its own answer, never a panic.
    #[test]
    fn built_headers_reach_every_branch(
        count in 0u32..6,
        rows in 0u32..12,
        cols in 0u32..12,
        case in 0u8..5,
        wrong_magic_low in 0u8..=255,
        seed in any::<u8>(),
    ) {
        let body_len = (count * rows * cols) as usize;
        let mut magic_low = 3;
        let mut body: Vec<u8> = (0..body_len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        match case {
            1 if body_len > 0 => {
                body.pop();
            }
            2 => body.push(seed),
            3 if wrong_magic_low != 3 => magic_low = wrong_magic_low,
            _ => {}
        }
        let mut bytes = vec![0, 0, 8, magic_low];
        for d in [count, rows, cols] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend_from_slice(&body);
        let path = Path::new("header.idx");
        let valid = magic_low == 3 && body.len() == body_len && rows > 0 && cols > 0;
        match idx::parse_images(&bytes, path) {
            Ok(images) => {
                prop_assert!(valid, "case {} parsed", case);
                prop_assert_eq!(
                    (images.count, images.rows, images.cols),
                    (count as usize, rows as usize, cols as usize)
                );
                prop_assert_eq!(images.pixels, body);
            }
            Err(e) => {
                prop_assert!(!valid, "a valid file was refused: {}", e);
                prop_assert!(e.to_string().contains("header.idx"), "{}", e);
            }
        }
        // The same bytes are never a label file (magic 1 ≠ 3).
        prop_assert!(idx::parse_labels(&bytes, path).is_err());
    }

    #[test]
    fn round_trip_any_labels(labels in proptest::collection::vec(any::<u8>(), 0..300)) {
        let path = tmp("prop-labels.gz");
        idx::write_gz_labels(&path, &labels).unwrap();
        prop_assert_eq!(idx::read_labels(&path).unwrap(), labels);
    }
}
