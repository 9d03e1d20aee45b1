//! Every bad input the loader must refuse, each with a clear message naming the file (or
//! folder) and the reason; and `skip_invalid`, which lists them instead.

mod common;

use common::*;
use mri_preprocess::{CacheMode, Dataset, LoadOptions, PreprocessError};

fn opts(skip_invalid: bool) -> LoadOptions {
    LoadOptions { cache: CacheMode::Disabled, skip_invalid, ..Default::default() }
}

fn load_err(root: &std::path::Path) -> PreprocessError {
    Dataset::load(root, &opts(false)).expect_err("load must fail")
}

#[test]
fn missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nope");
    let e = load_err(&root);
    assert!(matches!(e, PreprocessError::MissingFolder { .. }));
    assert_eq!(e.to_string(), format!("data folder {} does not exist", root.display()));
}

#[test]
fn empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, PreprocessError::EmptyFolder { .. }), "{e}");
    assert_eq!(e.to_string(), format!("{} holds no image files", dir.path().display()));
}

#[test]
fn empty_class_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/y0.jpg", &head_png(40, 40));
    std::fs::create_dir_all(dir.path().join("no")).unwrap();
    let e = load_err(dir.path());
    assert_eq!(e.to_string(), format!("{} holds no image files", dir.path().join("no").display()));
}

#[test]
fn folder_without_class_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "images/a.png", &head_png(40, 40));
    write(dir.path(), "readme.txt", b"hello");
    let e = load_err(dir.path());
    assert!(matches!(e, PreprocessError::NoClassFolders { .. }));
    let msg = e.to_string();
    assert!(msg.contains("has no class subfolders: expected yes/ (tumour) and no/ (no tumour)"), "{msg}");
    assert!(msg.contains("found images/, readme.txt"), "{msg}");
}

#[test]
fn corrupt_image() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    // A PNG signature followed by garbage.
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[7u8; 200]);
    write(dir.path(), "no/no5.jpg", &bytes);
    let e = load_err(dir.path());
    assert!(matches!(e, PreprocessError::Corrupt { format: "PNG", .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{}: corrupt or truncated PNG image:", dir.path().join("no/no5.jpg").display())), "{msg}");
}

#[test]
fn truncated_png() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    let full = head_png(64, 64);
    write(dir.path(), "yes/y9.png", &full[..full.len() / 2]);
    let e = load_err(dir.path());
    assert!(matches!(e, PreprocessError::Corrupt { format: "PNG", .. }), "{e}");
    assert!(e.to_string().contains("yes/y9.png"));
}

#[test]
fn truncated_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    let full = encode(&head_luma(64, 64), image::ImageFormat::Jpeg);
    write(dir.path(), "yes/y9.jpg", &full[..full.len() * 2 / 3]);
    let e = load_err(dir.path());
    assert_eq!(e.to_string(), format!("{}: corrupt or truncated JPEG image: no end-of-image marker (file truncated)", dir.path().join("yes/y9.jpg").display()));
}

#[test]
fn zero_byte_file() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(dir.path(), "yes/y7.jpg", b"");
    let e = load_err(dir.path());
    assert_eq!(e.to_string(), format!("{}: empty file (0 bytes)", dir.path().join("yes/y7.jpg").display()));
}

#[test]
fn non_image_file() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(dir.path(), "no/notes.jpg", b"these are my notes, not a picture");
    let e = load_err(dir.path());
    assert_eq!(e.to_string(), format!("{}: not an image (content is not PNG or JPEG, whatever the extension)", dir.path().join("no/notes.jpg").display()));
}

#[test]
fn image_too_small() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(dir.path(), "no/tiny.png", &head_png(15, 40));
    let e = load_err(dir.path());
    assert_eq!(e.to_string(), format!("{}: image is 15×40 px, smaller than the minimum 16 px", dir.path().join("no/tiny.png").display()));
}

#[test]
fn stops_at_first_bad_file_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(dir.path(), "yes/b.jpg", b"");
    write(dir.path(), "no/a.jpg", b"not an image");
    // "no/a.jpg" sorts before "yes/b.jpg".
    assert!(matches!(load_err(dir.path()), PreprocessError::NotAnImage { .. }));
}

#[test]
fn skip_invalid_lists_every_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(dir.path(), "yes/empty.jpg", b"");
    write(dir.path(), "no/text.jpg", b"plain text");
    write(dir.path(), "no/tiny.png", &head_png(8, 8));
    let ds = Dataset::load(dir.path(), &opts(true)).unwrap();
    assert_eq!(ds.len(), 4);
    let skipped: Vec<(&str, bool)> = ds.skipped.iter().map(|s| (s.rel_path.as_str(), s.reason.contains(&s.rel_path))).collect();
    assert_eq!(skipped, [("no/text.jpg", true), ("no/tiny.png", true), ("yes/empty.jpg", true)]);
    assert!(ds.skipped[0].reason.ends_with("not an image (content is not PNG or JPEG, whatever the extension)"));
    assert!(ds.skipped[1].reason.ends_with("image is 8×8 px, smaller than the minimum 16 px"));
    assert!(ds.skipped[2].reason.ends_with("empty file (0 bytes)"));
}

#[test]
fn skip_invalid_with_nothing_valid_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/a.jpg", b"");
    write(dir.path(), "no/b.jpg", b"");
    assert!(matches!(Dataset::load(dir.path(), &opts(true)), Err(PreprocessError::EmptyFolder { .. })));
}

/// Finding 4 of the [structure] issue: a file name that is not UTF-8 was reported as "No such
/// file or directory", and a broken symbolic link or a folder named `x.jpg` inside a class
/// folder was dropped without a word. Each is now refused with its reason, or listed as
/// skipped under `skip_invalid`.
#[cfg(unix)]
#[test]
fn unusable_entries_are_named_not_dropped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/y0.png", &head_png(40, 40));
    write(dir.path(), "no/n0.png", &head_png(40, 40));
    let bad_name = std::ffi::OsStr::from_bytes(b"n\xff.png");
    std::fs::write(dir.path().join("no").join(bad_name), head_png(40, 40)).unwrap();
    let e = load_err(dir.path());
    assert!(matches!(e, PreprocessError::UnusableEntry { .. }) && e.to_string().contains("not valid UTF-8"), "{e}");
    std::fs::remove_file(dir.path().join("no").join(bad_name)).unwrap();

    std::os::unix::fs::symlink(dir.path().join("gone.png"), dir.path().join("yes/link.png")).unwrap();
    std::fs::create_dir_all(dir.path().join("yes/x.jpg")).unwrap();
    let e = load_err(dir.path());
    assert!(e.to_string().contains("link.png") && e.to_string().contains("broken symbolic link"), "{e}");
    let ds = Dataset::load(dir.path(), &opts(true)).unwrap();
    let skipped: Vec<&str> = ds.skipped.iter().map(|s| s.rel_path.as_str()).collect();
    assert_eq!(skipped, ["yes/link.png", "yes/x.jpg"]);
    assert!(ds.skipped[1].reason.contains("a folder named like an image"), "{}", ds.skipped[1].reason);
    assert_eq!(ds.len(), 2);
}

/// Finding 3: `preprocess` on a folder with only `yes/` wrote `split.json`, then failed with
/// "invalid parameter grid". The split itself now says what is wrong.
#[test]
fn a_split_of_one_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "yes/y0.png", &head_png(40, 40));
    write(dir.path(), "yes/y1.png", &head_png(44, 40));
    let ds = Dataset::load(dir.path(), &opts(false)).unwrap();
    let groups: Vec<String> = (0..ds.len()).map(|i| format!("g{i}")).collect();
    let e = ds.split(&groups, &mri_preprocess::SplitParams::with_seed(0)).unwrap_err();
    assert!(e.to_string().contains("only yes slices, no no slices"), "{e}");
}
