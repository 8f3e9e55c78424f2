//! What a client asks of history on SUBSCRIBE: `x-recover-offset: N` (the
//! last offset it holds) and `x-recover-epoch: E`. The session reads the
//! stream after N ([`super::session`]), [`super::topics::Topics::recovered`]
//! sends what followed N when history still holds all of it, and the
//! RECEIPT says `x-recovered: true|false` with the stream's position
//! (`x-stream-offset`, `x-stream-epoch`).

use super::frame::Frame;

/// The position a client recovers from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub offset: u64,
    pub epoch: String,
}

/// The position a SUBSCRIBE asks to recover from, if it asks; why its
/// headers cannot be used, if they cannot.
pub fn asked(f: &Frame) -> Result<Option<Asked>, String> {
    match (f.get("x-recover-offset"), f.get("x-recover-epoch")) {
        (None, None) => Ok(None),
        (Some(offset), Some(epoch)) => {
            let offset = offset.parse().map_err(|_| {
                format!(
                    "x-recover-offset must be a whole number, got {:?}",
                    super::frame::truncate(offset, 32)
                )
            })?;
            Ok(Some(Asked {
                offset,
                epoch: epoch.to_owned(),
            }))
        }
        _ => Err("x-recover-offset and x-recover-epoch go together".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_headers_or_neither() {
        let f = |h: &[(&str, &str)]| {
            h.iter()
                .fold(Frame::new("SUBSCRIBE"), |f, (k, v)| f.header(k, *v))
        };
        assert_eq!(asked(&f(&[])), Ok(None));
        assert_eq!(
            asked(&f(&[("x-recover-offset", "12"), ("x-recover-epoch", "ab")])),
            Ok(Some(Asked {
                offset: 12,
                epoch: "ab".into()
            }))
        );
        assert!(asked(&f(&[("x-recover-offset", "12")])).is_err());
        assert!(asked(&f(&[("x-recover-epoch", "ab")])).is_err());
        let bad = asked(&f(&[("x-recover-offset", "-1"), ("x-recover-epoch", "ab")]));
        assert!(bad.unwrap_err().contains("whole number"));
    }
}
