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
                return Err(format!("unknown option {name}"));
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
}
