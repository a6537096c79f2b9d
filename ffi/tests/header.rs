//! The committed `include/resilience.h` must be exactly what cbindgen
//! generates from the current sources, and every exported function in it must
//! carry a doc comment (ownership, thread-safety, statuses).
//!
//! `RSL_BLESS=1 cargo test -p resilience-ffi --test header` rewrites it.

use std::path::PathBuf;

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("utf-8 header")
}

#[test]
fn header_is_fresh_and_documented() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include/resilience.h");
    let fresh = generate();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("RSL_BLESS").is_some() {
        if committed != fresh {
            std::fs::write(&path, &fresh).expect("write header");
        }
    } else {
        assert!(
            committed == fresh,
            "include/resilience.h is stale: run `RSL_BLESS=1 cargo test -p resilience-ffi --test header` and commit it"
        );
    }

    // Every function declaration is preceded by a doc comment.
    let lines: Vec<&str> = fresh.lines().collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let is_decl = !t.starts_with('*')
            && !t.starts_with("/*")
            && !t.starts_with("#")
            && t.contains("rsl_")
            && t.contains('(')
            && !t.starts_with("typedef");
        if is_decl {
            // Walk back over a multi-line declaration start to the comment.
            let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim());
            if prev != Some("*/") && !prev.is_some_and(|p| p.ends_with(',')) {
                undocumented.push(t.to_string());
            }
        }
    }
    assert!(undocumented.is_empty(), "undocumented exported functions: {undocumented:#?}");
}
