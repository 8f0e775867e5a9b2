//! An exposition's body as a scrape gets it: bytes kept with the collection, or chunks sent
//! while the exposition is encoded, for an exposition too big to keep.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes are sent in chunks of this size.
pub const CHUNK: usize = 64 * 1024;

/// How long a chunk may wait for the scraper to take it before the encoding gives up: a
/// scraper that stops reading would otherwise hold an encoding thread for as long as its
/// connection lasts (and enough of them, every thread the encodings have).
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// An encoded body is kept with its collection (and served as it is to the other scrapes of
/// the window) when it is at most this big (a gzipped exposition of about 300,000 series).
/// A bigger one is encoded again for each scrape as it is sent: at 50,000 guests with every
/// collector the gzipped exposition is 17 MB, and keeping it would cost a third of what the
/// exporter needs in all.
pub const KEPT_AT_MOST: usize = 4 * 1024 * 1024;

/// What a scrape is answered with.
#[derive(Debug)]
pub enum Body {
    /// The whole body at once.
    Whole(Bytes),
    /// The body in chunks as they are encoded; it ends when the channel closes.
    Chunks(mpsc::Receiver<Bytes>),
}

/// Sends what is written to it in [`CHUNK`]s, and keeps them (the same bytes, not a copy)
/// while they stay within `keep_at_most` bytes in all.
pub struct Chunks {
    to: mpsc::Sender<Bytes>,
    pending: Vec<u8>,
    kept: Option<Vec<Bytes>>,
    keep_at_most: usize,
    written: usize,
    patience: std::time::Duration,
}

/// What [`Chunks`] sent, once finished.
pub struct Sent {
    /// How many bytes were sent.
    pub written: usize,
    /// All of them, if they were few enough to keep.
    pub kept: Option<Vec<u8>>,
}

impl Chunks {
    /// Chunks sent to `to`, kept up to `keep_at_most` bytes (0: none) unless `expected` (the
    /// last body's size) says they will be more.
    pub fn new(to: mpsc::Sender<Bytes>, keep_at_most: usize, expected: usize) -> Self {
        let kept = (expected <= keep_at_most && keep_at_most > 0).then(Vec::new);
        Chunks {
            to,
            pending: Vec::with_capacity(CHUNK),
            kept,
            keep_at_most,
            written: 0,
            patience: PATIENCE,
        }
    }

    /// Gives up on a scraper that has not taken a chunk within `patience` (default
    /// [`PATIENCE`]).
    pub fn with_patience(mut self, patience: std::time::Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Sends what is left and says what was sent.
    pub fn finish(mut self) -> std::io::Result<Sent> {
        self.send()?;
        // In one piece: what the window's other scrapes are sent at once.
        let kept = self.kept.map(|chunks| chunks.concat());
        Ok(Sent {
            written: self.written,
            kept,
        })
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(CHUNK),
        ));
        self.written += chunk.len();
        if let Some(kept) = &mut self.kept {
            if self.written <= self.keep_at_most {
                kept.push(chunk.clone());
            } else {
                self.kept = None;
            }
        }
        let left = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        match tokio::runtime::Handle::try_current() {
            // On one of the runtime's blocking threads: wait as long as the patience lasts.
            Ok(runtime) => {
                match runtime.block_on(tokio::time::timeout(self.patience, self.to.send(chunk))) {
                    Ok(sent) => sent.map_err(|_| left()),
                    Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                }
            }
            Err(_) => self.to.blocking_send(chunk).map_err(|_| left()),
        }
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // Sent before it would outgrow its room: a chunk is one allocation of CHUNK bytes,
        // not one of twice that (a Vec grows by doubling, and the chunk keeps the room).
        if self.pending.len() + bytes.len() > CHUNK {
            self.send()?;
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn received(mut rx: mpsc::Receiver<Bytes>) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            chunks.push(chunk);
        }
        chunks
    }

    #[test]
    fn small_bodies_are_sent_and_kept_big_ones_only_sent() {
        let (tx, rx) = mpsc::channel(64);
        let mut small = Chunks::new(tx, 1000, 10);
        small.write_all(b"hello ").unwrap();
        small.write_all(b"world").unwrap();
        let sent = small.finish().unwrap();
        assert_eq!(sent.written, 11);
        assert_eq!(sent.kept.as_deref(), Some(&b"hello world"[..]));
        assert_eq!(received(rx), vec![Bytes::from_static(b"hello world")]);

        let (tx, rx) = mpsc::channel(64);
        let mut big = Chunks::new(tx, CHUNK, 0);
        let data = vec![7u8; 3 * CHUNK + 5];
        big.write_all(&data).unwrap();
        let sent = big.finish().unwrap();
        assert_eq!(sent.written, data.len());
        assert!(sent.kept.is_none(), "over the limit: not kept");
        let chunks = received(rx);
        assert!(chunks.iter().all(|c| c.len() <= data.len()));
        assert_eq!(chunks.concat(), data);
    }

    #[tokio::test]
    async fn a_scraper_that_stops_reading_is_given_up() {
        let (tx, _rx) = mpsc::channel(1);
        let writing = tokio::task::spawn_blocking(move || {
            let mut chunks = Chunks::new(tx, 0, 0).with_patience(Duration::from_millis(100));
            // The channel takes one chunk; the second waits for a reader that never comes.
            (0..4).try_for_each(|_| chunks.write_all(&vec![0u8; CHUNK]))
        });
        let written = tokio::time::timeout(Duration::from_secs(10), writing).await;
        let err = written.unwrap().unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn a_scraper_that_left_stops_the_writing() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut chunks = Chunks::new(tx, 0, 0);
        let err = chunks.write_all(&vec![0u8; 2 * CHUNK]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
