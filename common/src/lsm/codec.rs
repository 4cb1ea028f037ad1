//! zstd with one compression and one decompression context per thread.
//! `zstd::bulk::compress` and `decompress` make (and zero) a fresh context
//! of ~100-200 KiB on every call: with a run block or an event-log chunk
//! per call, that was a sixth of a merge thread's time
//! (docs/benchmarks.md, "The lean write path").

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

use super::LsmError;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// `bytes` as one zstd frame at `level` (negative levels are zstd's fast
/// modes), its content size recorded in the frame.
pub fn compress(bytes: &[u8], level: i32) -> Vec<u8> {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            let c = Compressor::new(level).expect("zstd makes a compression context");
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(bytes).expect("zstd compresses in memory")
    })
}

/// Decompresses a frame [`compress`] wrote, into a buffer of exactly its
/// recorded content size: zstd's bulk API otherwise reserves the whole
/// `cap` for every value (without its `experimental` feature it cannot size
/// the frame itself), and a cached block would own that much memory. A
/// frame that claims more than `cap`, or no size, is corrupt.
pub fn decompress(key: &[u8], stored: &[u8], cap: usize) -> Result<Vec<u8>, LsmError> {
    let size = match zstd::zstd_safe::get_frame_content_size(stored) {
        Ok(Some(n)) if n <= cap as u64 => n as usize,
        Ok(Some(n)) => return Err(LsmError::corrupt(key, format!("a frame of {n} bytes"))),
        Ok(None) | Err(_) => return Err(LsmError::corrupt(key, "a frame without its size")),
    };
    let raw = DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(Decompressor::new().map_err(|e| LsmError::corrupt(key, e))?);
        }
        let d = slot.as_mut().expect("set above");
        d.decompress(stored, size)
            .map_err(|e| LsmError::corrupt(key, e))
    })?;
    if raw.len() != size {
        return Err(LsmError::corrupt(key, "a frame shorter than its size"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip_at_any_level_and_bad_frames_are_refused() {
        let raw: Vec<u8> = (0..10_000u32)
            .flat_map(|i| (i % 97).to_be_bytes())
            .collect();
        for level in [1, -5, 3, 1] {
            let z = compress(&raw, level);
            assert_eq!(decompress(b"k", &z, raw.len()).unwrap(), raw);
            assert!(matches!(
                decompress(b"k", &z, raw.len() - 1),
                Err(LsmError::Corrupt { .. })
            ));
        }
        let z = compress(&raw, 1);
        assert!(decompress(b"k", &z[..z.len() - 3], raw.len()).is_err());
        let streamed = zstd::stream::encode_all(&raw[..], 1).unwrap();
        // The streaming encoder does not record the size.
        assert!(decompress(b"k", &streamed, raw.len()).is_err());
    }
}
