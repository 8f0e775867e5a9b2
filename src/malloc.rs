//! glibc's allocator, set once at start for a process whose big allocations come and go with
//! every collection (50,000 rows, a 4 MB exposition). By default glibc gives threads arenas
//! of their own, keeps what they free there, and raises its mmap threshold each time a big
//! block is freed, so that the next collection's rows land on the heap beside the last one's
//! holes: at 500 nodes / 50,000 guests peak RSS climbed from 38 to 47 MB over three scrapes;
//! with one arena and fixed thresholds it levels off 2–3 MB above the first scrape's peak
//! (BENCHMARKS.md, "Scale"). An operator's own `MALLOC_*` variables win: then nothing is
//! changed.

/// What [`tune`] sets: one arena; blocks from 128 KiB up mapped on their own (and unmapped
/// when freed); the heap's top given back from 128 KiB.
pub const ARENAS: i32 = 1;
pub const MMAP_THRESHOLD: i32 = 128 * 1024;
pub const TRIM_THRESHOLD: i32 = 128 * 1024;

/// Whether the environment leaves the allocator's settings to us: no `MALLOC_*` variable
/// (glibc reads those itself, and they are the operator's choice).
pub fn left_to_us<K: AsRef<std::ffi::OsStr>>(names: impl IntoIterator<Item = K>) -> bool {
    !names.into_iter().any(|name| {
        name.as_ref()
            .to_str()
            .is_some_and(|name| name.starts_with("MALLOC_"))
    })
}

/// Sets glibc's allocator as above unless the environment has settings of its own; call it
/// first in `main`, before any thread starts. Returns whether it did (never on other C
/// libraries).
pub fn tune() -> bool {
    if !left_to_us(std::env::vars_os().map(|(name, _)| name)) {
        return false;
    }
    let tuned = set();
    TUNED.store(tuned, std::sync::atomic::Ordering::Relaxed);
    tuned
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set() -> bool {
    // SAFETY: mallopt changes the allocator's parameters and nothing else; it is called before
    // the runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set() -> bool {
    false
}

/// Whether [`tune`] set glibc up (and [`trim`] may hand memory back).
static TUNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Hands the heap's free pages back to the system after a collection or an encoding freed
/// what it held for a while (glibc keeps freed memory between live blocks otherwise: at
/// 50,000 guests that doubled the resident size). Only when [`tune`] set the allocator up.
pub fn trim() {
    if TUNED.load(std::sync::atomic::Ordering::Relaxed) {
        trim_now();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_now() {
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_now() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_malloc_variable_leaves_the_allocator_alone() {
        assert!(left_to_us(["PATH", "HOME", "PROXMOX_EXPORTER_SERVER_PORT"]));
        assert!(left_to_us(Vec::<String>::new()));
        assert!(!left_to_us(["PATH", "MALLOC_ARENA_MAX"]));
        assert!(!left_to_us(["MALLOC_MMAP_THRESHOLD_"]));
        // Only the prefix glibc reads counts.
        assert!(left_to_us(["MY_MALLOC_ARENA_MAX"]));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_settings() {
        // mallopt answers 1 for a parameter it accepted; a wrong constant would answer 0.
        assert!(set());
    }
}
