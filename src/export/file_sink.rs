//! The embedded default sink: with no endpoint configured, each batch is
//! appended to a file in a local directory as one OTLP/JSON
//! ExportTraceServiceRequest a line — the format the OpenTelemetry
//! Collector's file exporter writes — so a user sees spans with no server.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::transport::{Accepted, BodyFormat, SendError, Transport};
use crate::buffer::files::SetAside;

/// The most of the service name a sink file's name keeps (one byte each:
/// other characters become `_`).
const SERVICE_NAME_MAX_CHARS: usize = 200;

pub struct FileSink {
    dir: PathBuf,
    path: PathBuf,
    file: Option<File>,
    /// The open file's last line is not whole (a write cut short that
    /// could not be taken back): the next line starts on a line of its
    /// own, so that it stays readable.
    torn: bool,
    /// What was moved out of the sink file's way, not yet told.
    set_aside: Vec<SetAside>,
    /// Why the last write failed (None once one succeeds), for the lines
    /// said while the next try is waited for (`Transport::not_taking`).
    failed: Option<String>,
}

impl FileSink {
    /// One file per process, so that processes sharing the directory never
    /// interleave lines.
    pub fn new(dir: &Path, service_name: &str) -> FileSink {
        // Cut to leave room for "-<pid>.jsonl" in a file name's 255 bytes:
        // a longer service name (it comes from the environment too) would
        // make every write fail (ENAMETOOLONG) and keep every span in the
        // spool for good.
        let safe: String = service_name
            .chars()
            .take(SERVICE_NAME_MAX_CHARS)
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
            failed: None,
            torn: false,
            set_aside: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (0600, in a 0700 directory of ours) the sink file: never
    /// through a symbolic link, never a FIFO or another user's file, which
    /// would make the sink write spans wherever they lead.
    /// Appends `body` as one line.
    fn append(&mut self, body: &[u8]) -> std::io::Result<()> {
        self.open()?;
        let torn = self.torn;
        let f = self.file.as_mut().expect("opened above");
        // One write per line, so a reader never sees half a request
        // followed by another's start.
        let start = f.metadata()?.len();
        let mut line = Vec::with_capacity(body.len() + 2);
        if torn {
            line.push(b'\n');
        }
        line.extend_from_slice(body);
        line.push(b'\n');
        if let Err(e) = f.write_all(&line) {
            // A full disk cuts a write short: what got written is taken
            // back, or the retry's whole line would follow half of this
            // one on the same line, and neither would parse while the
            // spans counted as exported. Truncating frees space, so it
            // works where the write did not; if it does not, the next
            // line starts a line of its own.
            self.torn = f.set_len(start).is_err() || torn;
            return Err(e);
        }
        self.torn = false;
        Ok(())
    }

    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            crate::buffer::files::ensure_private_dir(&self.dir)?;
            let file = match crate::buffer::files::open_append(&self.path) {
                Ok(file) => file,
                // Something not ours took the file's name (planted before
                // this process wrote, while the directory was open to
                // others): moved aside, unread, or every batch would go
                // to the spool for the rest of the process.
                Err(e) => match crate::buffer::files::set_aside_if_foreign(&self.path) {
                    Ok(Some(moved)) => {
                        // Told: someone was in the sink's directory.
                        self.set_aside.push(moved);
                        crate::buffer::files::open_append(&self.path)?
                    }
                    _ => return Err(e),
                },
            };
            self.torn = !ends_a_line(&file)?;
            self.file = Some(file);
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
        let e = match self.append(body) {
            Ok(()) => {
                self.failed = None;
                return Ok(Accepted::default());
            }
            Err(e) => e,
        };
        // The file may have been removed or the disk filled: reopen next
        // time, and let the retry logic decide.
        self.file = None;
        let path = self.path.display();
        let reason = match e.raw_os_error() {
            // Said plainly, and where: a local file on a full disk was
            // said to be "the backend is down".
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                format!("the disk is full where the local sink writes: writing {path}: {e}")
            }
            _ => format!("writing {path}: {e}"),
        };
        self.failed = Some(reason.clone());
        Err(SendError::Transient {
            reason,
            retry_after: None,
        })
    }

    fn not_taking(&self) -> Option<String> {
        self.failed.clone()
    }

    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    /// The sink's directory (made absolute, links not followed), with
    /// what kind of sender it is: a dead process's spans meant for this
    /// directory are recovered by a sink writing there, never by another
    /// sink or an endpoint (`spool::destination_of`); no backend refuses
    /// a sink, so none is ever kept for another sender.
    fn sender_fingerprint(&self) -> Option<u64> {
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let parts = [&b"file sink"[..], dir.as_os_str().as_encoded_bytes()];
        Some(super::transport::stable_fingerprint(parts))
    }

    fn take_set_aside(&mut self) -> Vec<SetAside> {
        std::mem::take(&mut self.set_aside)
    }
}

/// Whether `file` is empty or its last byte ends a line.
fn ends_a_line(file: &File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
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

    /// A service name longer than a file name may be still gives a sink
    /// that works.
    #[test]
    fn a_long_service_name_still_gives_a_sink_file() {
        let dir = std::env::temp_dir().join(format!("sg-sink-long-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = FileSink::new(&dir, &"a".repeat(300));
        sink.send(b"{}", BodyFormat::Json, false).expect("write");
        assert_eq!(std::fs::read(sink.path()).expect("read"), b"{}\n");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A write the disk cuts short (here the file size limit, as a full
    /// disk would) leaves no half line: it is taken back, so the next line
    /// (the retry) is whole and every line parses. Run alone in a process
    /// of its own, whose files may not grow past 4 KiB.
    #[test]
    fn a_write_cut_short_leaves_no_half_line() {
        if !crate::forking_tests::run_alone(module_path!(), "a_write_cut_short_leaves_no_half_line")
        {
            return;
        }
        let limit = libc::rlimit {
            rlim_cur: 4096,
            rlim_max: 4096,
        };
        // SAFETY: plain calls on this process, which runs this test alone.
        unsafe {
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let body = |c: u8, n: usize| [b"\"".as_slice(), &vec![c; n - 2], b"\""].concat();
        let dir = std::env::temp_dir().join(format!("sg-sink-short-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = FileSink::new(&dir, "svc");
        for c in [b'a', b'b', b'c'] {
            sink.send(&body(c, 1000), BodyFormat::Json, false)
                .expect("fits");
        }
        // 3,003 bytes written: 2,000 more are cut at 4,096.
        assert!(
            sink.send(&body(b'd', 2000), BodyFormat::Json, false)
                .is_err()
        );
        assert_eq!(std::fs::metadata(sink.path()).expect("stat").len(), 3003);
        sink.send(&body(b'e', 500), BodyFormat::Json, false)
            .expect("the retry fits");
        let text = std::fs::read_to_string(sink.path()).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text:.200}");
        assert!(lines.iter().all(|l| l.starts_with('"') && l.ends_with('"')));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A file left with a half line (by a run that could not take it back)
    /// gets the next line on a line of its own.
    #[test]
    fn a_half_line_left_before_is_not_continued() {
        let dir = std::env::temp_dir().join(format!("sg-sink-half-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = FileSink::new(&dir, "svc");
        sink.send(b"{\"a\":1}", BodyFormat::Json, false)
            .expect("write");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(sink.path())
            .expect("open");
        f.write_all(b"{\"cut").expect("write");
        let mut sink = FileSink::new(&dir, "svc");
        sink.send(b"{\"b\":2}", BodyFormat::Json, false)
            .expect("write");
        let text = std::fs::read_to_string(sink.path()).expect("read");
        assert_eq!(text, "{\"a\":1}\n{\"cut\n{\"b\":2}\n");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Another user (or anything) who planted a link or a FIFO where the
    /// sink file goes must not make the sink append spans to what it
    /// names, nor keep it from writing: the planted name is moved aside,
    /// unread, and the sink writes a file of its own there (before, every
    /// batch was refused and went to the spool for the process's life).
    #[test]
    fn a_link_or_fifo_in_place_of_the_sink_file_is_moved_aside_never_followed() {
        let dir = std::env::temp_dir().join(format!("sg-sink-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let target = dir.join("victim.txt");
        std::fs::write(&target, b"keep\n").expect("write");
        let spans = dir.join("spans");
        std::fs::create_dir_all(&spans).expect("mkdir");
        let mut sink = FileSink::new(&spans, "svc");
        std::os::unix::fs::symlink(&target, sink.path()).expect("symlink");
        sink.send(b"{}", BodyFormat::Json, false)
            .expect("written to a file of its own");
        assert_eq!(std::fs::read(&target).expect("read"), b"keep\n");
        assert_eq!(std::fs::read(sink.path()).expect("sink"), b"{}\n");
        let names: Vec<String> = std::fs::read_dir(&spans)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.ends_with(crate::buffer::files::SET_ASIDE_SUFFIX)),
            "{names:?}"
        );
        // A FIFO: opening one for writing could block or feed a reader.
        let mut sink = FileSink::new(&spans, "fifo");
        let c = std::ffi::CString::new(sink.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
        sink.send(b"{}", BodyFormat::Json, false)
            .expect("written to a file of its own");
        assert!(
            std::fs::symlink_metadata(sink.path())
                .expect("stat")
                .is_file()
        );
        // A hard link to a file of the user's elsewhere (~/.bashrc): a
        // regular file of theirs, so it passed, and every batch was
        // appended to it. (Another user can make one where the kernel's
        // fs.protected_hardlinks is off.)
        let mut sink = FileSink::new(&spans, "hard");
        std::fs::hard_link(&target, sink.path()).expect("hard link");
        sink.send(b"{}", BodyFormat::Json, false)
            .expect("written to a file of its own");
        assert_eq!(std::fs::read(&target).expect("read"), b"keep\n");
        assert_eq!(std::fs::read(sink.path()).expect("sink"), b"{}\n");
        let set_aside = sink.take_set_aside();
        assert_eq!(set_aside.len(), 1, "{set_aside:?}");
        assert!(set_aside[0].reason.contains("hard links"), "{set_aside:?}");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Through a tracer: a link planted where its sink file goes (by
    /// another user, while the directory was open to them) is moved aside
    /// as before, and now counted and said, as a spool file set aside is:
    /// it was moved without a word, and the user never learnt that
    /// someone had been in their sink directory.
    #[test]
    fn a_planted_sink_file_set_aside_is_counted_and_said() {
        use crate::config::TracerConfig;
        use crate::tracer::{Parent, Tracer};
        let dir = std::env::temp_dir().join(format!("sg-sink-planted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tracer = Tracer::new(TracerConfig {
            endpoint: None,
            sink_dir: dir.join("spans"),
            spool_dir: dir.join("spool"),
            install_signal_handlers: false,
            ..TracerConfig::default()
        })
        .expect("tracer");
        let sink = tracer.sink_path().expect("file sink").to_path_buf();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &sink).expect("symlink");
        let (span, _) = tracer.begin(b"op", Parent::None, 1).expect("begin");
        tracer.end(span, 0).expect("end");
        tracer
            .flush(std::time::Duration::from_secs(30))
            .expect("flush");
        let stats = tracer.stats();
        assert_eq!((stats.spans_exported, stats.files_set_aside), (1, 1));
        drop(tracer);
        std::fs::remove_dir_all(&dir).ok();
    }
}
