//! W3C Trace Context `tracestate`: a list of up to 32 `key=value` members
//! that vendors pass along a trace. What comes in from another process is
//! checked against the grammar (an invalid header is discarded whole, as the
//! specification's strictest reading and its test suite expect), combined
//! into one canonical list (members joined by `,`, no optional whitespace,
//! a repeated key kept once), and cut by whole members when it does not fit
//! the room a span has for it: members longer than 128 characters go first,
//! then members from the end.
//!
//! Nothing here allocates: the members are found with a fixed table of
//! 32 ranges and written into the caller's buffer.

use super::limits::MAX_TRACESTATE_BYTES;

/// The most members a tracestate may have.
const MAX_MEMBERS: usize = 32;
/// Members longer than this are the first to go when a tracestate is cut.
const LONG_MEMBER: usize = 128;
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 256;

/// Why an incoming tracestate was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracestateError {
    /// A member does not follow the grammar (key, `=`, value).
    Malformed,
    /// More than 32 members.
    TooManyMembers,
}

/// A canonical tracestate, at most `MAX_TRACESTATE_BYTES` long.
#[derive(Clone, Copy)]
pub struct Tracestate {
    bytes: [u8; MAX_TRACESTATE_BYTES],
    len: u16,
    /// Members removed to make it fit.
    pub cut_members: u8,
}

impl Default for Tracestate {
    fn default() -> Self {
        Tracestate {
            bytes: [0; MAX_TRACESTATE_BYTES],
            len: 0,
            cut_members: 0,
        }
    }
}

impl std::fmt::Debug for Tracestate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tracestate")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl Tracestate {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parses a combined header value (several `tracestate` headers joined
    /// with `,`, as RFC 9110 combines them). Empty and whitespace-only
    /// members are allowed and dropped.
    pub fn parse(input: &[u8]) -> Result<Tracestate, TracestateError> {
        let mut members = [(0usize, 0usize, 0usize); MAX_MEMBERS]; // start, '=' at, end
        let mut count = 0;
        for (start, end) in split_members(input) {
            let Some(eq) = member_is_valid(&input[start..end]) else {
                return Err(TracestateError::Malformed);
            };
            let key = &input[start..start + eq];
            // A key seen already keeps its first value (the specification
            // allows keeping either; the test suite accepts both).
            if members[..count]
                .iter()
                .any(|&(s, e, _)| &input[s..s + e] == key)
            {
                continue;
            }
            if count == MAX_MEMBERS {
                return Err(TracestateError::TooManyMembers);
            }
            members[count] = (start, eq, end);
            count += 1;
        }
        let mut keep = [true; MAX_MEMBERS];
        let size = |keep: &[bool; MAX_MEMBERS]| {
            let (n, bytes) = members[..count]
                .iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .fold((0usize, 0usize), |(n, b), (&(s, _, e), _)| {
                    (n + 1, b + e - s)
                });
            bytes + n.saturating_sub(1)
        };
        let mut cut = 0u8;
        // Too long: whole members go, the long ones first, then from the end.
        for i in (0..count).rev() {
            if size(&keep) <= MAX_TRACESTATE_BYTES {
                break;
            }
            if members[i].2 - members[i].0 > LONG_MEMBER {
                keep[i] = false;
                cut += 1;
            }
        }
        for i in (0..count).rev() {
            if size(&keep) <= MAX_TRACESTATE_BYTES {
                break;
            }
            if keep[i] {
                keep[i] = false;
                cut += 1;
            }
        }
        let mut out = Tracestate {
            cut_members: cut,
            ..Tracestate::default()
        };
        let mut at = 0;
        for (&(s, _, e), _) in members[..count].iter().zip(&keep).filter(|(_, k)| **k) {
            if at > 0 {
                out.bytes[at] = b',';
                at += 1;
            }
            out.bytes[at..at + e - s].copy_from_slice(&input[s..e]);
            at += e - s;
        }
        out.len = at as u16;
        Ok(out)
    }
}

/// The members of a list, each trimmed of optional whitespace, empty ones
/// skipped.
fn split_members(input: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        while start <= input.len() {
            let end = input[start..]
                .iter()
                .position(|&b| b == b',')
                .map_or(input.len(), |p| start + p);
            let (mut s, mut e) = (start, end);
            start = end + 1;
            while s < e && is_ows(input[s]) {
                s += 1;
            }
            while e > s && is_ows(input[e - 1]) {
                e -= 1;
            }
            if s < e {
                return Some((s, e));
            }
        }
        None
    })
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Where the `=` of a valid member is, or None.
///
/// key = ( lcalpha / DIGIT ) 0*255 ( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )
/// value = 0*255( %x20-2B / %x2D-3C / %x3E-7E ) ( %x21-2B / %x2D-3C / %x3E-7E )
fn member_is_valid(member: &[u8]) -> Option<usize> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    let first_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let key_ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && first_ok(key[0])
        && key[1..]
            .iter()
            .all(|&b| first_ok(b) || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@'));
    let value_char = |b: u8| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=';
    let value_ok = !value.is_empty()
        && value.len() <= MAX_VALUE
        && value.iter().all(|&b| value_char(b))
        && value[value.len() - 1] != b' ';
    (key_ok && value_ok).then_some(eq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, TracestateError> {
        Tracestate::parse(s.as_bytes()).map(|t| String::from_utf8(t.as_bytes().to_vec()).unwrap())
    }

    #[test]
    fn valid_lists_are_kept_in_order_without_optional_whitespace() {
        assert_eq!(
            canon("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            Ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into())
        );
        assert_eq!(
            canon("foo=1 \t , \t bar=2, \t baz=3"),
            Ok("foo=1,bar=2,baz=3".into())
        );
        assert_eq!(canon("\t foo=1 \t"), Ok("foo=1".into()));
        assert_eq!(canon(""), Ok("".into()));
        assert_eq!(canon(" , ,"), Ok("".into()));
        // Leading spaces of a value are part of it.
        assert_eq!(canon("foo= 1"), Ok("foo= 1".into()));
        assert_eq!(canon("foo=1,foo=2"), Ok("foo=1".into()));
    }

    #[test]
    fn the_key_grammar_is_the_specifications() {
        let all_key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let all_value: String = (0x20u8..=0x7e)
            .filter(|&b| b != b',' && b != b'=')
            .map(|b| b as char)
            .collect();
        let member = format!("{all_key}={all_value}");
        assert_eq!(canon(&member), Ok(member.clone()));
        for ok in ["foo@=1", "foo@@bar=1", "foo@bar@baz=1", "0abc=1"] {
            assert!(canon(ok).is_ok(), "{ok}");
        }
        for bad in [
            "foo =1",
            "FOO=1",
            "foo.bar=1",
            "@foo=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "=1",
            "foo",
        ] {
            assert_eq!(canon(bad), Err(TracestateError::Malformed), "{bad}");
        }
        assert!(canon(&format!("{}=1", "z".repeat(256))).is_ok());
        assert!(canon(&format!("{}=1", "z".repeat(257))).is_err());
        assert!(canon(&format!("k={}", "v".repeat(256))).is_ok());
        assert!(canon(&format!("k={}", "v".repeat(257))).is_err());
        assert!(
            canon("k=v ").is_ok(),
            "a trailing space is optional whitespace"
        );
    }

    #[test]
    fn more_than_32_members_discard_the_header() {
        let list = |n: usize| {
            (1..=n)
                .map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(canon(&list(32)).is_ok());
        assert_eq!(canon(&list(33)), Err(TracestateError::TooManyMembers));
    }

    #[test]
    fn long_lists_are_cut_by_whole_members_long_ones_first() {
        let long = format!("big={}", "x".repeat(200));
        let mut members: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "v".repeat(20)))
            .collect();
        members.insert(1, long.clone());
        let t = Tracestate::parse(members.join(",").as_bytes()).expect("valid");
        let text = String::from_utf8(t.as_bytes().to_vec()).unwrap();
        assert!(text.len() <= MAX_TRACESTATE_BYTES);
        assert!(!text.contains("big="), "the long member goes first");
        // Then whole members from the end: what is left is a prefix of the rest.
        members.remove(1);
        let kept: Vec<&str> = text.split(',').collect();
        assert_eq!(
            kept[..],
            members[..kept.len()]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
        );
        assert_eq!(t.cut_members as usize, 1 + members.len() - kept.len());
        // A list that fits loses nothing.
        let fits = Tracestate::parse(b"a=1,b=2").expect("valid");
        assert_eq!(fits.cut_members, 0);
    }
}
