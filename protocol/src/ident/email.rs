//! E-mail addresses.

use super::Rejection;
use super::normalize::{fold, lower_fold};

/// Characters that need quoting in an address; leaked data never quotes,
/// so they mean the cell is not a single address.
fn is_forbidden(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '(' | ')' | ',' | ';' | ':' | '<' | '>' | '[' | ']' | '\\' | '"'
        )
}

/// Longest canonical address, in bytes (RFC 5321's limit on a path).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Canonicalise an e-mail address: NFKC, trimmed, lower-cased whole
/// (providers that matter here are case-insensitive); at most [`MAX_EMAIL_BYTES`].
pub fn canonical_email(raw: &str) -> Result<String, Rejection> {
    let email = lower_fold(&fold(raw));
    if email.chars().any(is_forbidden) {
        return Err(Rejection::Malformed);
    }
    let (local, domain) = email.split_once('@').ok_or(Rejection::Malformed)?;
    if local.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(Rejection::Malformed);
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return Err(Rejection::Malformed);
    }
    // RFC 5321's limit on a path; it also keeps every OPRF input within RFC 9497's 2^16 - 1.
    if email.len() > MAX_EMAIL_BYTES {
        return Err(Rejection::WrongLength);
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn addresses_longer_than_254_bytes_are_refused() {
        let at_limit = format!("{}@qq.com", "a".repeat(MAX_EMAIL_BYTES - 7));
        assert_eq!(canonical_email(&at_limit).as_deref(), Ok(at_limit.as_str()));
        let over = format!("a{at_limit}");
        assert_eq!(canonical_email(&over), Err(Rejection::WrongLength));
    }

    #[test]
    fn examples() {
        assert_eq!(
            canonical_email("  Zhang.San@QQ.com ").as_deref(),
            Ok("zhang.san@qq.com")
        );
        assert_eq!(
            canonical_email("ＺＨＡＮＧ＠１６３．ＣＯＭ").as_deref(),
            Ok("zhang@163.com")
        );
        assert_eq!(
            canonical_email("user+tag@mail.example.cn").as_deref(),
            Ok("user+tag@mail.example.cn")
        );
    }

    #[test]
    fn malformed() {
        for raw in [
            "",
            "zhang",
            "@qq.com",
            "zhang@",
            "zhang@qq",
            "zhang@@qq.com",
            "a@b@qq.com",
            "zhang san@qq.com",
            "zhang@qq..com",
            "zhang@.qq.com",
            "zhang@qq.com.",
            "zhang@-qq.com",
            "zhang@q_q.com",
            "<zhang@qq.com>",
            "zhang@qq.com\u{7}",
        ] {
            assert_eq!(canonical_email(raw), Err(Rejection::Malformed), "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn idempotent(raw in "\\PC*|\\PC{1,6}@\\PC{1,6}\\.\\PC{1,4}|[A-Za-zÀ-ÿİΣ0-9.+]{1,8}@[A-Za-zÀ-ÿİΣ0-9]{1,8}\\.[a-zA-Z]{2,4}") {
            if let Ok(c) = canonical_email(&raw) {
                prop_assert_eq!(canonical_email(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_email(&raw);
        }
    }
}
