//! A process's /proc/PID/stat line, as `spanguard why` reads every
//! visible process's to tell whether a record's process still runs, and a
//! tracer its own for its outcome record (`outcome::start_ticks_in`). The
//! command's name in it is anyone's choice: another local user's process
//! names itself with any bytes (`prctl`, /proc/PID/comm, an executable's
//! name cut at 15 bytes within a character), `)` and spaces included.
//!
//! Any bytes read as a line: never a panic. And a line as the kernel
//! writes it around any name (the input's bytes up to the first NUL, which
//! no name holds) with start ticks the input gives reads back those ticks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanguard::export::outcome::start_ticks_in;

fuzz_target!(|data: &[u8]| {
    let _ = start_ticks_in(data);

    let (ticks, name) = match data.split_first_chunk::<8>() {
        Some((ticks, rest)) => (u64::from_le_bytes(*ticks), rest),
        None => (0, data),
    };
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    let mut line = format!("{} (", ticks % 4_194_304).into_bytes();
    line.extend_from_slice(name);
    // The state, then fields 4 to 21, then the start (22nd), then more.
    line.extend_from_slice(b") S");
    for field in 4..22 {
        line.extend_from_slice(format!(" {}", field as i64 - 10).as_bytes());
    }
    line.extend_from_slice(format!(" {ticks} 1 2 3\n").as_bytes());
    assert_eq!(
        start_ticks_in(&line),
        Some(ticks),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
});
