//! `resilienced`: serves libresilience over RESP. See `resilienced --help`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("resilienced: not yet wired");
    std::process::exit(1);
}
