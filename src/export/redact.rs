//! Keeps credentials out of what spanguard says: an endpoint's userinfo
//! (`http://user:pass@host`) and header values (API keys) never reach a
//! callback message, stderr or the command line's output.

/// The URL with its password replaced by `***` (`http://user:***@host/`);
/// a URL without userinfo is returned as it is. One whose scheme was left
/// out or mistyped (`user:pass@host`, `http:/user:pass@host`: what
/// `spanguard replay --endpoint` refuses, saying what it was given) is
/// masked too: it was shown with its password.
pub fn redact_url(url: &str) -> String {
    let scheme_end = match url.find("://") {
        Some(i) => i + 3,
        None => url
            .find('@')
            .map_or(0, |at| url[..at].rfind('/').map_or(0, |slash| slash + 1)),
    };
    let rest = &url[scheme_end..];
    // The authority ends at the first '/', '?' or '#'; userinfo is what
    // comes before its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    format!(
        "{}{user}:***{}",
        &url[..scheme_end],
        &rest[at..] // '@host...' and everything after
    )
}

/// Secrets of one destination: texts that must never be repeated in a
/// message (the URL's password and user, every header value).
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    texts: Vec<String>,
}

impl Secrets {
    pub fn new(url: &str, headers: &[(String, String)]) -> Secrets {
        let mut texts: Vec<String> = headers
            .iter()
            .map(|(_, v)| v.clone())
            .filter(|v| v.len() >= 3)
            .collect();
        if let Some(scheme_end) = url.find("://").map(|i| i + 3) {
            let rest = &url[scheme_end..];
            let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
            if let Some(at) = authority.rfind('@') {
                let userinfo = &authority[..at];
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                // The whole user:password as it appears in the URL, and each
                // part where a message names it alone; as for header values,
                // not a part under 3 bytes: a one-letter password masked
                // everywhere made "connection ref***sed" of messages.
                texts.extend([userinfo, pass, user].map(str::to_string));
            }
        }
        texts.retain(|t| t.len() >= 3);
        // Longest first, so a secret that contains another is masked whole.
        texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        Secrets { texts }
    }

    /// `text` with every secret replaced by `***` (a server may echo an
    /// API key in its error body, curl may name the URL).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.texts {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            redact_url("http://user:pa55@collector:4318/v1/traces"),
            "http://user:***@collector:4318/v1/traces"
        );
        assert_eq!(
            redact_url("https://token@host/v1/traces?a=b@c"),
            "https://token:***@host/v1/traces?a=b@c"
        );
        assert_eq!(
            redact_url("http://a:b:c@h@host:1/x"),
            "http://a:***@host:1/x"
        );
        assert_eq!(
            redact_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(redact_url("discard:"), "discard:");
        for (url, shown) in [
            (
                "user:pa55@collector:4318/v1/traces",
                "user:***@collector:4318/v1/traces",
            ),
            (
                "http:/user:pa55@collector/v1/traces",
                "http:/user:***@collector/v1/traces",
            ),
            ("collector:4318/v1/traces", "collector:4318/v1/traces"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn secrets_are_scrubbed_from_free_text() {
        let s = Secrets::new(
            "http://bob:hunter2@h/v1/traces",
            &[("api-key".to_string(), "abc123".to_string())],
        );
        assert_eq!(
            s.scrub("HTTP 401: bad key abc123 for bob:hunter2@h"),
            "HTTP 401: bad key *** for ***@h"
        );
        assert_eq!(s.scrub("hunter2 alone"), "*** alone");
        assert_eq!(s.scrub("nothing here"), "nothing here");
    }

    /// A one-letter user or password is masked where the URL shows it,
    /// not wherever its letter appears.
    #[test]
    fn short_credentials_are_masked_in_the_url_only() {
        let s = Secrets::new("http://u:p@h:1/v1/traces", &[]);
        assert_eq!(
            s.scrub("connection refused or unreachable: http://u:p@h:1/v1/traces"),
            "connection refused or unreachable: http://***@h:1/v1/traces"
        );
    }
}
