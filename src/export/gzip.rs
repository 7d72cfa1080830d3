//! gzip with a deflate state that lives as long as the exporter: a
//! `GzEncoder` per batch would allocate zlib's ~300 KiB state every time.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

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
            let before = self.deflate.total_in() as usize;
            let status = self
                .deflate
                .compress_vec(&input[consumed..], out, FlushCompress::Finish)
                .expect("deflate of an in-memory buffer cannot fail");
            consumed += self.deflate.total_in() as usize - before;
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
        for input in [&b""[..], b"hello hello hello", &vec![7u8; 200_000]] {
            gz.compress(input, &mut out);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .expect("valid gzip");
            assert_eq!(back, input);
        }
    }
}
