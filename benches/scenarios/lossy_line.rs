//! A noisy line: an in-process proxy that forwards serial-framed traffic between
//! two byte streams, dropping whole frames and flipping bits, from a fixed seed.
//!
//! ```text
//!  A ══ throttled_pair (11,520 B/s each way) ══ proxy ══ in-memory duplex ══ B
//!                                               drops 1 frame in 100, flips bits at the BER
//! ```
//!
//! Frames are cut at the serial framing's `0x00` delimiters; a dropped frame
//! vanishes with its delimiter (as a frame lost to a receiver that missed its
//! start); bit errors hit every byte, delimiters included, at independent random
//! positions (the gap to the next flipped bit is drawn from the geometric law).
//! Faults start only when [`Faults::arm`] is called, so the handshake gets through.

use crate::data::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Fault rates and the switch that turns them on.
#[derive(Debug)]
pub struct Faults {
    /// Probability that a frame is dropped.
    pub frame_loss: f64,
    /// Probability that a bit is flipped.
    pub bit_error_rate: f64,
    armed: AtomicBool,
    /// Frames forwarded (both directions).
    pub frames: AtomicU64,
    /// Frames dropped.
    pub dropped: AtomicU64,
    /// Bits flipped.
    pub flipped: AtomicU64,
}

impl Faults {
    /// Faults at these rates, off until armed.
    pub fn new(frame_loss: f64, bit_error_rate: f64) -> Arc<Faults> {
        Arc::new(Faults {
            frame_loss,
            bit_error_rate,
            armed: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            flipped: AtomicU64::new(0),
        })
    }

    /// From now on, drop and corrupt.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// Forwards both ways between `a` and `b` until either side closes, each
/// direction with its own generator seeded from `seed`.
pub async fn proxy<A, B>(a: A, b: B, faults: Arc<Faults>, seed: u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let forward = pump(a_read, b_write, faults.clone(), Rng::new(seed));
    let backward = pump(b_read, a_write, faults, Rng::new(seed ^ 0x5eed));
    tokio::select! {
        () = forward => {}
        () = backward => {}
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    faults: Arc<Faults>,
    mut rng: Rng,
) {
    let mut buf = vec![0u8; 4096];
    let mut frame: Vec<u8> = Vec::new();
    let mut next_flip = gap(&mut rng, faults.bit_error_rate);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let armed = faults.armed.load(Ordering::SeqCst);
        let mut out = Vec::with_capacity(n);
        for &byte in &buf[..n] {
            let mut byte = byte;
            if armed {
                // Bits of this byte whose turn has come.
                while next_flip < 8 {
                    byte ^= 1 << next_flip;
                    faults.flipped.fetch_add(1, Ordering::Relaxed);
                    next_flip += 1 + gap(&mut rng, faults.bit_error_rate);
                }
                next_flip -= 8;
            }
            frame.push(byte);
            if byte == 0 {
                faults.frames.fetch_add(1, Ordering::Relaxed);
                if armed && rng.unit() < faults.frame_loss {
                    faults.dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    out.extend_from_slice(&frame);
                }
                frame.clear();
            }
        }
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            return;
        }
        let _ = to.flush().await;
    }
}

/// Bits before the next flipped one: geometric with success probability `p`.
fn gap(rng: &mut Rng, p: f64) -> u64 {
    if p <= 0.0 {
        return u64::MAX / 2;
    }
    let u = 1.0 - rng.unit(); // in (0, 1]
    (u.ln() / (1.0 - p).ln()).floor().min((u64::MAX / 4) as f64) as u64
}
