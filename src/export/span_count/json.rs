//! Counts the spans of an OTLP/JSON request read as a stream, as
//! `split::count_spans` counts them in the whole text (the same member
//! names, the first of a repeated one, the same leniency inside values it
//! does not read), through a 64 KiB buffer: a gzipped body that inflates
//! to hundreds of MiB is never held (it was, whole, to be counted).

use std::io::{self, Read};

use super::super::split::{RESOURCE_SPANS, SCOPE_SPANS, SPANS};

/// Text read through a buffer, checked to be UTF-8 as it is read (as
/// `count_spans` checks the whole text).
pub(super) struct Text<R> {
    r: R,
    buf: Box<[u8]>,
    /// The next byte to read, in `buf[..len]`.
    at: usize,
    len: usize,
    /// Bytes after `len` that begin a character the next read finishes.
    tail: usize,
    /// Bytes read from `r` so far.
    pub(super) read: u64,
    /// The reader's own error (gzip, I/O) or the text's (not UTF-8).
    pub(super) failure: Option<String>,
}

/// The longest member name kept to compare: longer ones are none of ours.
const KEY_BYTES: usize = 32;

/// A member name as it is written (escapes not decoded, as
/// `split::json_array` compares them).
struct Key {
    bytes: [u8; KEY_BYTES],
    len: usize,
    too_long: bool,
}

impl Key {
    fn is(&self, names: [&str; 2]) -> bool {
        !self.too_long
            && names
                .iter()
                .any(|n| n.as_bytes() == &self.bytes[..self.len])
    }
}

impl<R: Read> Text<R> {
    pub(super) fn new(r: R) -> Text<R> {
        Text {
            r,
            buf: vec![0; 64 << 10].into_boxed_slice(),
            at: 0,
            len: 0,
            tail: 0,
            read: 0,
            failure: None,
        }
    }

    /// Reads more; false at the end, or on an error (kept in `failure`).
    fn refill(&mut self) -> bool {
        loop {
            // An unfinished character of the last read goes first.
            self.buf.copy_within(self.len..self.len + self.tail, 0);
            let kept = self.tail;
            (self.at, self.len, self.tail) = (0, 0, 0);
            let n = loop {
                match self.r.read(&mut self.buf[kept..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if e.kind() != io::ErrorKind::UnexpectedEof {
                            self.failure = Some(e.to_string());
                        }
                        return false;
                    }
                }
            };
            if n == 0 {
                return false;
            }
            self.read += n as u64;
            let got = kept + n;
            match std::str::from_utf8(&self.buf[..got]) {
                Ok(_) => self.len = got,
                Err(e) if e.error_len().is_none() => {
                    self.len = e.valid_up_to();
                    self.tail = got - self.len;
                }
                Err(_) => {
                    self.failure = Some("not UTF-8".to_string());
                    return false;
                }
            }
            if self.len > 0 {
                return true;
            }
        }
    }

    /// Reads what is left, unlooked at; false on an error (kept in
    /// `failure`: the reader's, as text after the request is not read).
    pub(super) fn read_to_end(&mut self) -> bool {
        let mut rest = [0u8; 8 << 10];
        loop {
            match self.r.read(&mut rest) {
                Ok(0) => return true,
                Ok(n) => self.read += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failure = Some(e.to_string());
                    return false;
                }
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        if self.at == self.len && !self.refill() {
            return None;
        }
        Some(self.buf[self.at])
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The rest of a string whose opening quote was read, its bytes
    /// (escapes as written) kept in `key` while they fit.
    fn rest_of_string(&mut self, mut key: Option<&mut Key>) -> Option<()> {
        loop {
            let b = self.next()?;
            let escaped = match b {
                b'"' => return Some(()),
                b'\\' => Some(self.next()?),
                _ => None,
            };
            if let Some(k) = key.as_deref_mut() {
                for b in std::iter::once(b).chain(escaped) {
                    match k.bytes.get_mut(k.len) {
                        Some(slot) => {
                            *slot = b;
                            k.len += 1;
                        }
                        None => k.too_long = true,
                    }
                }
            }
        }
    }

    /// Skips one value as `split::skip_value` does: a string, an object
    /// or array (nesting counted, not recursed), or a number or word.
    fn skip_value(&mut self) -> Option<()> {
        match self.next()? {
            b'"' => self.rest_of_string(None),
            b'{' | b'[' => {
                let mut depth = 1u64;
                loop {
                    match self.next()? {
                        b'"' => self.rest_of_string(None)?,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                }
            }
            b if is_word(b) => {
                while self.peek().is_some_and(is_word) {
                    self.at += 1;
                }
                Some(())
            }
            _ => None,
        }
    }

    /// An object, each member's value read by `member` (given its name).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &Key) -> Option<()>) -> Option<()> {
        self.ws();
        if self.next()? != b'{' {
            return None;
        }
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            if self.next()? != b'"' {
                return None;
            }
            let mut key = Key {
                bytes: [0; KEY_BYTES],
                len: 0,
                too_long: false,
            };
            self.rest_of_string(Some(&mut key))?;
            self.ws();
            if self.next()? != b':' {
                return None;
            }
            self.ws();
            member(self, &key)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An array, each element read by `element`.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.next()? != b'[' {
            return None;
        }
        self.ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The member of an object named `names` (the first such) read as an
    /// array by `element`; every other member skipped.
    fn member_array(
        &mut self,
        names: [&str; 2],
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        let mut found = false;
        self.object(|t, key| {
            if !found && key.is(names) {
                found = true;
                t.array(&mut element)
            } else {
                t.skip_value()
            }
        })
    }
}

fn is_word(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
}

/// The spans of the request (resourceSpans / scopeSpans / spans); None
/// when it is not one (then `failure` may say why). What follows the
/// request's object is not read.
pub(super) fn count<R: Read>(t: &mut Text<R>) -> Option<u64> {
    let mut spans = 0u64;
    t.member_array(RESOURCE_SPANS, |t| {
        t.member_array(SCOPE_SPANS, |t| {
            t.member_array(SPANS, |t| {
                spans += 1;
                t.skip_value()
            })
        })
    })?;
    Some(spans)
}
