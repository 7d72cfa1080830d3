//! The few command-line shapes the subcommands share: positional
//! arguments, `--flag`, `--option VALUE` and `--option=VALUE`.

/// One subcommand's arguments, checked against what it accepts.
pub struct Args {
    pub positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

impl Args {
    /// `flags` take no value; `valued` take one. Anything else starting
    /// with `--` is an error naming it.
    pub fn parse(args: &[String], flags: &[&str], valued: &[&str]) -> Result<Args, String> {
        let mut out = Args {
            positional: Vec::new(),
            options: Vec::new(),
        };
        let mut rest = args.iter();
        while let Some(a) = rest.next() {
            if a == "--" {
                out.positional.extend(rest.by_ref().cloned());
                break;
            }
            if !a.starts_with("--") || a == "-" {
                // `-last 1` read as the files `-last` and `1` ("No such
                // file"): an option with one dash is named as such (a file
                // of that name goes after `--`).
                let dashed = format!("-{a}");
                let name = dashed.split('=').next().unwrap_or_default();
                if a.len() > 2
                    && !a.starts_with("--")
                    && a.starts_with('-')
                    && (flags.contains(&name) || valued.contains(&name))
                {
                    return Err(format!(
                        "unknown option {a}: an option takes two dashes, {name}"
                    ));
                }
                out.positional.push(a.clone());
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            if flags.contains(&name) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                out.options.push((name.to_string(), None));
            } else if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => rest
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value"))?,
                };
                out.options.push((name.to_string(), Some(value)));
            } else {
                let known = flags.iter().chain(valued).copied();
                return Err(match closest(name, known) {
                    Some(k) => format!("unknown option {name}, did you mean {k}?"),
                    None => format!("unknown option {name}"),
                });
            }
        }
        Ok(out)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    /// The last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// The one of `known` that `typed` is a slip of (a letter left out, added,
/// changed or two swapped: at most 2 edits, 1 for a word of 4 letters or
/// fewer), the nearest; None when none is that near.
pub fn closest<'a>(typed: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let letters = typed.trim_start_matches('-').chars().count();
    let most = if letters <= 4 { 1 } else { 2 };
    known
        .map(|k| (edits(typed, k), k))
        .filter(|&(d, _)| d <= most)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Edits (insertion, deletion, substitution, swap of two neighbours)
/// that make `a` into `b`.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the Damerau-Levenshtein table (optimal string
    // alignment): the names compared are a few dozen characters.
    let mut before: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let change = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + change);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_options_and_positionals() {
        let a = Args::parse(
            &strings(&[
                "dir",
                "--errors",
                "--name",
                "llm",
                "--since=10m",
                "--",
                "--odd",
            ]),
            &["--errors"],
            &["--name", "--since"],
        )
        .expect("valid");
        assert_eq!(a.positional, ["dir", "--odd"]);
        assert!(a.flag("--errors"));
        assert_eq!(a.value("--name"), Some("llm"));
        assert_eq!(a.value("--since"), Some("10m"));
        assert!(Args::parse(&strings(&["--bogus"]), &[], &[]).is_err());
        assert!(Args::parse(&strings(&["--name"]), &[], &["--name"]).is_err());
        assert!(Args::parse(&strings(&["--errors=1"]), &["--errors"], &[]).is_err());
    }

    #[test]
    fn a_slip_of_an_option_names_the_option() {
        let parse = |a: &[&str]| {
            Args::parse(&strings(a), &["--errors", "--full"], &["--last", "--since"])
                .err()
                .unwrap_or_default()
        };
        assert_eq!(
            parse(&["--erors"]),
            "unknown option --erors, did you mean --errors?"
        );
        assert_eq!(
            parse(&["--lsat", "1"]),
            "unknown option --lsat, did you mean --last?"
        );
        assert_eq!(
            parse(&["--sinec=1h"]),
            "unknown option --sinec, did you mean --since?"
        );
        assert_eq!(parse(&["--bogus"]), "unknown option --bogus");
        assert_eq!(
            parse(&["-last", "1"]),
            "unknown option -last: an option takes two dashes, --last"
        );
        assert_eq!(
            parse(&["-since=1h"]),
            "unknown option -since=1h: an option takes two dashes, --since"
        );
        // A file whose name starts with a dash, and the usual `-`.
        assert_eq!(parse(&["-lost", "-"]), "");
        assert_eq!(parse(&["--", "-last"]), "");
    }

    #[test]
    fn closest_is_a_slip_not_a_guess() {
        let commands = ["show", "tail", "spool", "replay", "check"];
        let near = |t| closest(t, commands.iter().copied());
        assert_eq!(near("sho"), Some("show"));
        assert_eq!(near("chekc"), Some("check"));
        assert_eq!(near("spoll"), Some("spool"));
        assert_eq!(near("replya"), Some("replay"));
        assert_eq!(near("list"), None);
        assert_eq!(near("s"), None);
    }
}
