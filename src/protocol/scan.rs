//! Finding the bytes that need attention eight at a time (SWAR): messages
//! are mostly plain ASCII, and looking at each byte on its own was a
//! visible share of the gateway's CPU per message.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Nonzero if some byte of `w` is below `n` (`n` at most 0x80).
#[inline]
pub fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(ONES * n as u64) & !w & HIGH
}

/// Nonzero if some byte of `w` equals `c`.
#[inline]
pub fn equal(w: u64, c: u8) -> u64 {
    below(w ^ (ONES * c as u64), 1)
}

/// Nonzero if some byte of `w` is not ASCII.
#[inline]
pub fn non_ascii(w: u64) -> u64 {
    w & HIGH
}

/// The first index at or after `from` whose byte satisfies `hit`. `maybe`
/// looks at a whole word first: it may report words without a hit, but
/// must never miss one.
#[inline]
pub fn find(
    bytes: &[u8],
    from: usize,
    maybe: impl Fn(u64) -> bool,
    hit: impl Fn(u8) -> bool,
) -> Option<usize> {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        if maybe(w) {
            if let Some(j) = chunk.iter().position(|&b| hit(b)) {
                return Some(i + j);
            }
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| hit(b)).map(|j| i + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_tests_find_every_byte_that_matches_at_every_position() {
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut word = [b'x'; 8];
                word[pos] = b;
                let w = u64::from_le_bytes(word);
                assert_eq!(below(w, 0x20) != 0, b < 0x20, "{b} at {pos}");
                assert_eq!(equal(w, b'"') != 0, b == b'"', "{b} at {pos}");
                assert_eq!(non_ascii(w) != 0, b >= 0x80, "{b} at {pos}");
            }
        }
    }

    #[test]
    fn find_reports_the_first_hit_from_any_start() {
        let text = b"0123456789abcdef\"123456789\"";
        let quote = |w| equal(w, b'"') != 0;
        assert_eq!(find(text, 0, quote, |b| b == b'"'), Some(16));
        assert_eq!(find(text, 17, quote, |b| b == b'"'), Some(26));
        assert_eq!(find(text, 27, quote, |b| b == b'"'), None);
        assert_eq!(find(b"", 0, quote, |b| b == b'"'), None);
    }
}
