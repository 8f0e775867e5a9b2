//! The allocator: jemalloc, set up for a process whose big allocations come and go with every
//! collection (50,000 inventory rows, the answers of thousands of per-guest requests, a
//! multi-megabyte exposition) while small ones (each guest's kept sweep answers) stay for
//! minutes among them.
//!
//! glibc's allocator, even tuned (one arena, fixed mmap and trim thresholds, a trim after each
//! collection), kept those long-lived small blocks scattered over pages it could then not give
//! back: with every collector on at 500 nodes and 50,000 guests the process peaked at 76–84 MB,
//! and a 16-byte change in one kept struct moved the peak by 15 MB. jemalloc keeps blocks of a
//! size together and, set as below, hands freed pages back at once: 60 MB in the same run
//! (BENCHMARKS.md, "The allocator").
//!
//! The binary sets it as the global allocator and passes [`SETTINGS`] through the symbol
//! jemalloc reads before `main` (see `main.rs`); the tests and benches of the library keep the
//! system's allocator. `_RJEM_MALLOC_CONF` in the environment overrides any setting (jemalloc
//! reads it after ours): `_RJEM_MALLOC_CONF=dirty_decay_ms:1000` trades memory for fewer
//! system calls.

/// jemalloc's settings: one arena (the exporter's threads share their memory instead of each
/// keeping its own), no per-thread caches, freed pages returned to the system at once.
pub const SETTINGS: &std::ffi::CStr = c"narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0";

/// The environment variable jemalloc (as the binary links it) reads its settings from.
pub const VARIABLE: &str = "_RJEM_MALLOC_CONF";

/// Whether these environment variable names leave the allocator's settings to the binary:
/// none of them is [`VARIABLE`].
pub fn left_to_us<K: AsRef<std::ffi::OsStr>>(names: impl IntoIterator<Item = K>) -> bool {
    !names
        .into_iter()
        .any(|name| name.as_ref().to_str() == Some(VARIABLE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operators_variable_overrides_the_settings() {
        assert!(left_to_us(["PATH", "HOME", "PROXMOX_EXPORTER_SERVER_PORT"]));
        assert!(left_to_us(Vec::<String>::new()));
        assert!(!left_to_us(["PATH", "_RJEM_MALLOC_CONF"]));
        // glibc's variables no longer matter.
        assert!(left_to_us(["MALLOC_ARENA_MAX"]));
    }

    #[test]
    fn the_settings_are_one_c_string_of_options() {
        let text = SETTINGS.to_str().unwrap();
        for option in text.split(',') {
            let (name, value) = option.split_once(':').unwrap();
            assert!(!name.is_empty() && !value.is_empty(), "{option}");
        }
        assert!(text.contains("narenas:1"));
    }
}
