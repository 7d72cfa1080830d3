//! The embedded default sink: with no endpoint configured, each batch is
//! appended to a file in a local directory as one OTLP/JSON
//! ExportTraceServiceRequest a line — the format the OpenTelemetry
//! Collector's file exporter writes — so a user sees spans with no server.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::transport::{Accepted, BodyFormat, SendError, Transport};

pub struct FileSink {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

impl FileSink {
    /// One file per process, so that processes sharing the directory never
    /// interleave lines.
    pub fn new(dir: &Path, service_name: &str) -> FileSink {
        let safe: String = service_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}-{}.jsonl", std::process::id()));
        FileSink {
            dir: dir.to_path_buf(),
            path,
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (0600, in a 0700 directory of ours) the sink file: never
    /// through a symbolic link, never a FIFO or another user's file, which
    /// would make the sink write spans wherever they lead.
    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            crate::buffer::files::ensure_private_dir(&self.dir)?;
            self.file = Some(crate::buffer::files::open_append(&self.path)?);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

impl Transport for FileSink {
    fn send(
        &mut self,
        body: &[u8],
        format: BodyFormat,
        gzipped: bool,
    ) -> Result<Accepted, SendError> {
        if format != BodyFormat::Json || gzipped {
            // Transient, not permanent: a spooled protobuf batch (from a run
            // that had an endpoint) must stay in the spool for a later
            // replay, not be discarded by this sink.
            return Err(SendError::Transient {
                reason: "the file sink writes plain OTLP/JSON only".to_string(),
                retry_after: None,
            });
        }
        let result = self.open().and_then(|f| {
            // One write per line, so a reader never sees half a request
            // followed by another's start.
            let mut line = Vec::with_capacity(body.len() + 1);
            line.extend_from_slice(body);
            line.push(b'\n');
            f.write_all(&line)
        });
        result.map(|_| Accepted::default()).map_err(|e| {
            // The file may have been removed or the disk filled: reopen next
            // time, and let the retry logic decide.
            self.file = None;
            SendError::Transient {
                reason: format!("writing {}: {e}", self.path.display()),
                retry_after: None,
            }
        })
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_one_request_each() {
        let dir = std::env::temp_dir().join(format!("sg-sink-{}", std::process::id()));
        let mut sink = FileSink::new(&dir, "my agent/1");
        sink.send(b"{\"a\":1}", BodyFormat::Json, false)
            .expect("write");
        sink.send(b"{\"b\":2}", BodyFormat::Json, false)
            .expect("write");
        let text = std::fs::read_to_string(sink.path()).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
        assert!(
            sink.path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("my_agent_1-")
        );
        assert!(sink.send(b"x", BodyFormat::Protobuf, false).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Another user (or anything) who planted a link where the sink file
    /// goes must not make the sink append spans to the file it names.
    #[test]
    fn a_link_in_place_of_the_sink_file_is_never_followed() {
        let dir = std::env::temp_dir().join(format!("sg-sink-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let target = dir.join("victim.txt");
        std::fs::write(&target, b"keep\n").expect("write");
        let mut sink = FileSink::new(&dir.join("spans"), "svc");
        std::fs::create_dir_all(dir.join("spans")).expect("mkdir");
        std::os::unix::fs::symlink(&target, sink.path()).expect("symlink");
        assert!(sink.send(b"{}", BodyFormat::Json, false).is_err());
        assert_eq!(std::fs::read(&target).expect("read"), b"keep\n");
        std::fs::remove_dir_all(&dir).ok();
    }
}
