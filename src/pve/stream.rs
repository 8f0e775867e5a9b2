//! Decoding a large answer as it arrives, for `/cluster/resources` (22 MB at 50,000 guests):
//! the body is never held whole. Its chunks go to a decoder on a blocking thread that reads
//! them through [`std::io::Read`] into the generated type, so the peak is the decoded rows
//! plus a few chunks, instead of the whole body (grown by doubling) and the rows together.

use std::io::Read;

use bytes::{Buf, Bytes};
use progenitor_client::{Error as ClientError, ResponseValue};
use serde::de::DeserializeOwned;

use progenitor_client::ClientInfo;

use super::client::{Client, MAX_ANSWER_BYTES, over_the_limit};

/// Chunks on their way from the response to the decoder.
const CHUNKS_IN_FLIGHT: usize = 8;

/// `GET path` (below the client's base URL) with the client's credentials, decoded into `T`
/// while the body arrives. Errors are the generated calls' errors: a status other than 2xx is
/// `UnexpectedResponse`, a broken body `ResponseBodyError`, an undecodable one
/// `InvalidResponsePayload` (without the body), one over [`MAX_ANSWER_BYTES`] `Custom`.
pub async fn get<T>(client: &Client, path: &str) -> Result<ResponseValue<T>, ClientError<()>>
where
    T: DeserializeOwned + Send + 'static,
{
    let url = format!("{}{path}", client.baseurl());
    let mut response = client
        .raw_get(&url)
        .send()
        .await
        .map_err(ClientError::CommunicationError)?;
    let (status, headers) = (response.status(), response.headers().clone());
    if !status.is_success() {
        return Err(ClientError::UnexpectedResponse(response));
    }
    if response.content_length().unwrap_or(0) > MAX_ANSWER_BYTES {
        return Err(over_the_limit());
    }
    let (chunks, receiver) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let decoder = tokio::task::spawn_blocking(move || {
        // serde_json reads a byte at a time: the buffer keeps that cheap.
        let reader = std::io::BufReader::with_capacity(
            64 << 10,
            ChunkReader {
                receiver,
                current: Bytes::new(),
            },
        );
        serde_json::from_reader::<_, T>(reader)
    });
    let mut received: u64 = 0;
    let failed = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                received += chunk.len() as u64;
                if received > MAX_ANSWER_BYTES {
                    break Some(over_the_limit());
                }
                if chunks.send(chunk).await.is_err() {
                    break None; // the decoder stopped: it has its error
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(ClientError::ResponseBodyError(e)),
        }
    };
    // The decoder sees the end of the body (or of what arrived).
    drop(chunks);
    let decoded = decoder.await;
    if let Some(error) = failed {
        return Err(error);
    }
    match decoded {
        Ok(Ok(value)) => Ok(ResponseValue::new(value, status, headers)),
        Ok(Err(e)) => Err(ClientError::InvalidResponsePayload(Bytes::new(), e)),
        Err(e) => Err(ClientError::Custom(format!("the decoder stopped: {e}"))),
    }
}

/// The body's chunks as one byte stream, for a decoder on a blocking thread.
struct ChunkReader {
    receiver: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
