//! What the exporter logs during one test, whatever the other tests of the binary do at the
//! same time.
//!
//! Why not `tracing::subscriber::set_default` per test: tracing caches, per log statement and
//! for the whole process, whether any subscriber wants it. While exactly one scoped
//! subscriber exists, tracing-core computes that cache from the subscriber of the thread that
//! reaches the statement first; when that is another test's thread (which has none), the
//! statement is cached as "never" and the capturing test sees no line. Under load that
//! happened one run in six. Here one subscriber is set for the whole process, once, so the
//! cache is always computed from it; it writes each line into the buffer of the thread that
//! logged it, if that thread is capturing.
//!
//! `#[tokio::test]` runs a test and every task it spawns on the test's own thread, so the
//! exporter's lines (collections, API errors) reach the test's buffer.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

thread_local! {
    static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Writes into the current thread's capture, or nowhere.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                lines.extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        // Another global subscriber in this binary would be a mistake of the tests.
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
    });
}

/// Captures this thread's log lines until dropped.
pub struct Capture(());

impl Capture {
    pub fn start() -> Capture {
        install();
        CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
        Capture(())
    }

    /// The lines logged so far.
    pub fn text(&self) -> String {
        CAPTURE.with(|c| String::from_utf8_lossy(c.borrow().as_deref().unwrap_or(&[])).into_owned())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}
