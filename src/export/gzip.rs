//! gzip with a deflate state that lives as long as the exporter: a
//! `GzEncoder` per batch would allocate zlib's ~300 KiB state every time.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The most spare room of the output handed to deflate a call (it zeroes
/// what it is given): a few calls for a request that compresses to a
/// megabyte, one for most.
const OUTPUT_WINDOW: usize = 64 << 10;

pub struct GzipWriter {
    deflate: Compress,
}

impl Default for GzipWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipWriter {
    pub fn new() -> GzipWriter {
        GzipWriter {
            // Raw deflate: the gzip header and trailer are written here.
            deflate: Compress::new(Compression::fast(), false),
        }
    }

    /// Replaces `out` with the gzip member of `input`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        // Magic, CM=deflate, no flags, no mtime, XFL, OS=unix.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        self.deflate.reset();
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(input.len() / 2 + 1024);
            }
            // At most `OUTPUT_WINDOW` of the spare room a call: flate2's
            // default backend zeroes all the room it is given before it
            // writes, and `out` keeps the capacity of the largest request
            // (a megabyte), which `compress_vec` zeroed whole for every
            // request however little it wrote (gzip44: 217 of 6,495
            // instructions a span by callgrind, 11,000 of 56,216 for
            // LLM-sized spans).
            let len = out.len();
            let room = (out.capacity() - len).min(OUTPUT_WINDOW);
            let (before_in, before_out) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress_uninit(
                    &input[consumed..],
                    &mut out.spare_capacity_mut()[..room],
                    FlushCompress::Finish,
                )
                .expect("deflate of an in-memory buffer cannot fail");
            let written = (self.deflate.total_out() - before_out) as usize;
            assert!(written <= room, "deflate wrote past the room it was given");
            // SAFETY: the first `written` bytes of the spare room are what
            // deflate wrote (its total_out counts them), within `room`.
            unsafe { out.set_len(len + written) };
            consumed += (self.deflate.total_in() - before_in) as usize;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(input);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn output_is_gzip_that_flate2_reads_back_and_state_is_reused() {
        let mut gz = GzipWriter::new();
        let mut out = Vec::new();
        // Incompressible bytes past several output windows, too.
        let noise: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for input in [&b""[..], b"hello hello hello", &vec![7u8; 200_000], &noise] {
            gz.compress(input, &mut out);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .expect("valid gzip");
            assert_eq!(back, input);
        }
    }
}
