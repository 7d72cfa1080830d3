//! A spool file found in the spool directory: any bytes are either a batch
//! whose body is exactly what its header says, or refused, never a panic
//! and never an allocation the file's size and the cap do not allow; its
//! spans are counted in its body, or it is no request.
//!
//! Then the same input as a file of any name (the input's last byte says
//! how many bytes before it are the name) replayed from a spool
//! directory: sent once at most, with the spans `spanguard spool` counts
//! in it, and gone once delivered; or, when it is no batch, set aside and
//! said; never sent by the sender its name says was refused it, and a
//! name says a sender only as a writer writes it.
//!
//! Then the same contents as the flight recorder's journal (named for a
//! flight file's id, `spool::journal_of`) beside a file of any name: the
//! journal waits for the flight file it names (`flight_id_of`), named as
//! the tracer names it, and for no other file; once that file is gone
//! it is replayed as any batch is.
#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spanguard::export::spool::{
    MAX_CUT_PLACES, ReplayVerdict, SpoolDir, count_in_body, count_spool_file,
    encode_header_with_places, flight_id_of, journal_of, read_batch, refused_by, setbacks,
};

const CAP: u64 = 1 << 16;

/// The sender replaying: the seeds name it in a refusal mark.
const SENDER: u64 = 0x0123_4567_89ab_cdef;

fuzz_target!(|data: &[u8]| {
    read_as_a_spool_file(data);
    replayed_under_any_name(data);
});

fn read_as_a_spool_file(data: &[u8]) {
    let path = std::env::temp_dir().join(format!("spanguard-fuzz-spool-{}", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    let file = std::fs::File::open(&path).expect("open");
    if let Ok(mut batch) = read_batch(&file, CAP) {
        // Any header: `SGSPOOL1`'s, `SGSPOOL2`'s with the count of values
        // cut, or `SGSPOOL3`'s with that count and the places of the
        // values (a u32 count, bounded, then a u32 each), read as written.
        let header = data.len() - batch.body.len();
        let places = batch.cut_at.len();
        assert!(places <= MAX_CUT_PLACES, "{places} places");
        if places == 0 {
            assert!(
                header == 22 || header == 30 || header == 34,
                "a header of {header} bytes"
            );
        } else {
            assert_eq!(header, 34 + 4 * places, "{places} places");
            assert_eq!(&data[..8], b"SGSPOOL3");
            for (i, &at) in batch.cut_at.iter().enumerate() {
                let raw = &data[34 + 4 * i..38 + 4 * i];
                assert_eq!(at, u32::from_le_bytes(raw.try_into().unwrap()) as u64);
            }
            // What a writer makes of them is that header again.
            let again = encode_header_with_places(
                batch.format,
                batch.gzipped,
                batch.spans,
                (batch.cut_counted, &batch.cut_at),
                batch.body.len(),
            );
            if batch.cut_counted > 0 && data[9] <= 1 {
                assert_eq!(&again[..], &data[..header]);
            }
        }
        assert!(data.ends_with(&batch.body));
        assert!(batch.body.len() as u64 <= CAP);
        // Its spans are counted in its body, or it is no request: never a
        // panic, and never a count the body does not hold.
        let claimed = batch.spans;
        match count_in_body(&mut batch) {
            Ok(None) => assert_eq!(batch.spans, claimed),
            Ok(Some(n)) => assert_eq!(n, claimed),
            Err(_) => {}
        }
    }
}

fn replayed_under_any_name(data: &[u8]) {
    let Some((&name_len, rest)) = data.split_last() else {
        return;
    };
    let Some(split) = rest.len().checked_sub(name_len as usize) else {
        return;
    };
    let (contents, name) = rest.split_at(split);
    // A name a directory can hold: no '/' and no NUL, nor "." or "..".
    let mut name: Vec<u8> = name
        .iter()
        .map(|&b| if b == b'/' || b == 0 { b'_' } else { b })
        .collect();
    if name.is_empty() || name == b"." || name == b".." {
        name = b"x".to_vec();
    }
    beside_a_flight_file(contents, &name);
    let dir = std::env::temp_dir().join(format!("spanguard-fuzz-spooldir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(std::ffi::OsStr::from_bytes(&name));
    std::fs::write(&path, contents).expect("temp file");

    // A sender is said by a name only as a writer writes it.
    let text = String::from_utf8_lossy(&name).to_ascii_lowercase();
    let named = refused_by(&path);
    if let Some(f) = named {
        assert!(text.contains(&format!("-refusedby{f:016x}")), "{text:?}");
    }
    let _ = setbacks(&path);

    // What `spanguard spool` counts in it, before the replay.
    let listed = count_spool_file(&path, CAP).ok().map(|c| c.spans);
    let mut spool = SpoolDir::new(&dir, CAP);
    spool.set_sender(Some(SENDER));
    let mut sent = Vec::new();
    let (batches, spans) = spool.replay(|batch| {
        sent.push(batch.spans);
        ReplayVerdict::Delivered
    });
    assert!(sent.len() <= 1, "sent {} times", sent.len());
    assert_eq!(
        (batches, spans),
        (sent.len() as u64, sent.iter().map(|&n| n as u64).sum())
    );
    let raw = String::from_utf8_lossy(&name);
    let batch_name = raw.ends_with(".sgspool") && !raw.starts_with('.');
    // A writer's temporary file, its writer dead: deleted, never sent.
    let temporary = raw.starts_with(".tmp-") && raw.ends_with(".sgspool");
    if let Some(&n) = sent.first() {
        assert!(batch_name, "{text:?} is no batch's name");
        assert_ne!(named, Some(SENDER), "sent by the sender it was refused to");
        assert_eq!(listed, Some(n), "spool counts what replay sends");
        assert!(!exists(&path), "delivered, and still there");
    } else if batch_name && named != Some(SENDER) {
        // No batch: set aside and said, not left to be tried again.
        assert_eq!(listed, None, "{text:?} counted {listed:?} but not sent");
        assert_eq!(spool.take_set_aside().len(), 1, "{text:?}");
        assert!(!exists(&path));
    } else if !temporary {
        assert!(
            exists(&path),
            "{text:?}: not a batch, or refused: left alone"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// `contents` as the journal of the flight file with the id and pid the
/// first 12 bytes of `name` give, beside a file named by the rest of it
/// (its first byte odd) or that flight file as the tracer names it.
fn beside_a_flight_file(contents: &[u8], name: &[u8]) {
    let Some((head, rest)) = name.split_first_chunk::<12>() else {
        return;
    };
    // A pid a kernel gives (PID_MAX_LIMIT: 2^22 on 64-bit kernels).
    let pid = u32::from_le_bytes(head[..4].try_into().unwrap()) % (1 << 22);
    let id = u64::from_le_bytes(head[4..].try_into().unwrap());
    let dir =
        std::env::temp_dir().join(format!("spanguard-fuzz-journaldir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let journal = dir.join(format!(
        "{:020}-{pid:010}-000001-journalof{id:016x}.sgspool",
        1_700_000_000_100_000_000u64
    ));
    assert_eq!(journal_of(&journal), Some(id), "{}", journal.display());
    let as_the_tracer = format!(
        "{:020}-{pid:010}-{id:x}.sgflight",
        1_700_000_000_000_000_000u64
    );
    let beside = if head[0] & 1 == 1 && !rest.is_empty() && rest != b"." && rest != b".." {
        rest.to_vec()
    } else {
        as_the_tracer.clone().into_bytes()
    };
    let beside = dir.join(std::ffi::OsStr::from_bytes(&beside));
    if beside == journal {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    std::fs::write(&journal, contents).expect("journal");
    std::fs::write(&beside, b"").expect("beside");
    // An id is read from a name only as the tracer writes it, in hex.
    let text = String::from_utf8_lossy(rest).to_ascii_lowercase();
    if let Some(other) = flight_id_of(Path::new(std::ffi::OsStr::from_bytes(rest))) {
        assert!(
            text.ends_with(".sgflight"),
            "{text:?} read as flight file {other:x}"
        );
        assert!(
            text.contains(&format!("{other:x}")),
            "{text:?} read as {other:x}"
        );
    }
    if let Some(other) = journal_of(Path::new(std::ffi::OsStr::from_bytes(rest))) {
        assert!(
            text.contains(&format!("-journalof{other:016x}")),
            "{text:?} read as journal of {other:x}"
        );
    }
    let its_flight_file = beside.file_name() == Some(std::ffi::OsStr::new(&as_the_tracer));
    let replay = |spool: &mut SpoolDir| {
        let mut sent = 0;
        spool.replay(|_| {
            sent += 1;
            ReplayVerdict::Delivered
        });
        let set_aside = spool.take_set_aside().len();
        (sent, set_aside)
    };
    let mut spool = SpoolDir::new(&dir, CAP);
    let (sent, set_aside) = replay(&mut spool);
    if its_flight_file {
        // Its flight file's recovery must read it first.
        assert_eq!(
            (sent, set_aside),
            (0, 0),
            "a journal sent before its flight file was recovered"
        );
        assert!(
            exists(&journal),
            "a journal gone before its flight file was recovered"
        );
        std::fs::remove_file(&beside).expect("recovered");
        let (sent, set_aside) = replay(&mut spool);
        assert_eq!(
            sent + set_aside,
            1,
            "a journal not replayed once its flight file was gone"
        );
    } else if flight_id_of(&beside) != Some(id) {
        // No file of its flight file's id: it does not wait.
        assert!(sent + set_aside >= 1, "sent {sent}, set aside {set_aside}");
        assert!(
            !exists(&journal),
            "a journal waiting for {}",
            beside.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
