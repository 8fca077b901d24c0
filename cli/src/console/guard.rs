//! Who may talk to the console: the checks every request passes before a page is made.
//!
//! The console listens on 127.0.0.1 only, but any web page the officer opens could make their
//! browser send requests to it, and a DNS name can be re-pointed at 127.0.0.1 (DNS
//! rebinding). So: the Host must name this machine's loopback and the console's port; the
//! session is a cookie made from a one-time token (HttpOnly, SameSite=Strict, so no other
//! site's page sends it); a request that changes anything must come from the console's own
//! origin and carry the session's CSRF token. Pure functions, tested here; `mod.rs` applies
//! them.

/// Whether `host` (the Host header) is the console itself: localhost, 127.0.0.1 or [::1]
/// with its port. Anything else is a name someone pointed at this machine.
pub fn host_ok(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else { return false };
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|h| host.eq_ignore_ascii_case(&format!("{h}:{port}")))
}

/// Whether `origin` (the Origin header) is the console's own, for the `host` the request was
/// sent to (already checked by [`host_ok`]).
pub fn origin_ok(origin: Option<&str>, host: &str) -> bool {
    origin.is_some_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")))
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A new secret: 32 random bytes, as hex.
pub fn secret() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system's random number generator works");
    hex::encode(b)
}

/// What the browser may load and run on a console page: only the console's own files; no
/// inline script, no frames, no other site.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_with_the_port_are_the_console() {
        for h in [
            "127.0.0.1:8443",
            "localhost:8443",
            "[::1]:8443",
            "LOCALHOST:8443",
        ] {
            assert!(host_ok(Some(h), 8443), "{h}");
        }
        for h in [
            "127.0.0.1:8444",
            "127.0.0.1",
            "evil.example:8443",
            "localhost.evil.example:8443",
            "127.0.0.1:8443.evil.example",
            "",
        ] {
            assert!(!host_ok(Some(h), 8443), "{h}");
        }
        assert!(!host_ok(None, 8443));
    }

    #[test]
    fn the_origin_must_be_the_consoles_own() {
        assert!(origin_ok(Some("http://127.0.0.1:9000"), "127.0.0.1:9000"));
        assert!(!origin_ok(Some("http://evil.example"), "127.0.0.1:9000"));
        assert!(!origin_ok(Some("https://127.0.0.1:9000"), "127.0.0.1:9000"));
        assert!(!origin_ok(Some("null"), "127.0.0.1:9000"));
        assert!(!origin_ok(None, "127.0.0.1:9000"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = Some("a=1; rdc_session=abc; b=2");
        assert_eq!(cookie(h, "rdc_session"), Some("abc"));
        assert_eq!(cookie(h, "rdc"), None);
        assert_eq!(cookie(None, "a"), None);
    }

    #[test]
    fn secrets_differ_and_compare() {
        let (a, b) = (secret(), secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, ""));
    }
}
