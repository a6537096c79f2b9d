//! `resilienced`: serves libresilience over RESP. See `resilienced --help`.

use resilience_server::{Config, Engine};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Blocks SIGINT and SIGTERM in this thread (and the threads it will start),
/// so that `wait_for_signal` can take them synchronously.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it
    // and pthread_sigmask reads it; all pointers are to this live local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by `block_signals`; `sig` is a live local.
    while unsafe { libc::sigwait(set, &mut sig) } != 0 {}
    sig
}

/// Raises the open-file limit to fit `maxclients` (as Redis does); if the
/// hard limit is lower, lowers `maxclients` to fit and says so.
fn fit_file_limit(config: &mut Config) {
    let want = (config.maxclients as u64).saturating_add(64 + 4 * config.shards as u64);
    // SAFETY: getrlimit/setrlimit read and write a live local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        let target = want.min(lim.rlim_max);
        if target > lim.rlim_cur {
            let raised = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = target;
            }
        }
        if lim.rlim_cur < want {
            let fit = lim.rlim_cur.saturating_sub(64 + 4 * config.shards as u64).max(1) as usize;
            eprintln!(
                "resilienced: open-file limit is {}; maxclients lowered from {} to {fit}",
                lim.rlim_cur, config.maxclients
            );
            config.maxclients = fit;
        }
    }
}

fn main() {
    let mut config = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => {
            eprintln!("resilienced: {e} (see --help)");
            std::process::exit(2);
        }
    };
    fit_file_limit(&mut config);
    let signals = block_signals();
    let shards = config.shards;
    let engine = match Engine::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("resilienced: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "resilienced {} listening on {} ({shards} shard{}, io_uring)",
        env!("CARGO_PKG_VERSION"),
        engine.local_addr(),
        if shards == 1 { "" } else { "s" }
    );
    let sig = wait_for_signal(&signals);
    eprintln!("resilienced: signal {sig}, shutting down");
    engine.stop();
    engine.join();
}
