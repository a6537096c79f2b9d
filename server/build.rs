//! Compiles `src/float.c`: INCRBYFLOAT's `long double` arithmetic.

fn main() {
    println!("cargo:rerun-if-changed=src/float.c");
    cc::Build::new().file("src/float.c").warnings(true).extra_warnings(true).compile("resilienced_float");
}
