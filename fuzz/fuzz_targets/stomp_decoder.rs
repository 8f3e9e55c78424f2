//! The STOMP decoder fed any text, split into SockJS messages of any size
//! or packed into one: never a panic, work linear in the bytes fed, and the
//! same items whatever the cut (issue 18).
//!   cargo fuzz run stomp_decoder -s none -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjs_gateway::service::stomp::frame::{Decoder, FrameError, Item, Limits, Version};

/// Items out, the refusal if any, and the work, for `pieces`.
fn decode<'a>(
    pieces: impl Iterator<Item = &'a str>,
    limits: Limits,
    version: Version,
) -> (Vec<Item>, Option<FrameError>) {
    let mut d = Decoder::new(limits);
    d.set_version(version);
    let (mut items, mut fed, mut feeds) = (Vec::new(), 0u64, 0u64);
    let mut refused = None;
    for p in pieces {
        fed += p.len() as u64;
        feeds += 1;
        match d.feed(p) {
            Ok(got) => items.extend(got),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        d.work() <= 3 * fed + 2 * feeds,
        "work {} for {fed} bytes in {feeds} pieces",
        d.work()
    );
    (items, refused)
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the version, the limits and the cut; the
    // rest, repeated, is the text (so short inputs still make long heads).
    let [mode, repeat, rest @ ..] = data else {
        return;
    };
    let Ok(unit) = std::str::from_utf8(rest) else {
        return;
    };
    let text = unit.repeat(usize::from(*repeat % 64) + 1);
    let version = [Version::V1_0, Version::V1_1, Version::V1_2][usize::from(mode % 3)];
    let limits = Limits {
        max_frame_bytes: 1 << 16,
        max_headers: if mode & 0x80 != 0 { 1 << 20 } else { 64 },
    };
    let step = usize::from((mode >> 2) & 0x1f) + 1;
    let mut bounds = vec![0];
    while *bounds.last().unwrap() < text.len() {
        let mut next = (bounds.last().unwrap() + step).min(text.len());
        while !text.is_char_boundary(next) {
            next += 1;
        }
        bounds.push(next);
    }
    let (split, split_refused) = decode(
        bounds.windows(2).map(|w| &text[w[0]..w[1]]),
        limits,
        version,
    );
    let (packed, packed_refused) = decode(std::iter::once(text.as_str()), limits, version);
    assert_eq!(split_refused.is_some(), packed_refused.is_some());
    if split_refused.is_none() {
        assert_eq!(split, packed);
    } else {
        assert!(packed.starts_with(&split) || split.starts_with(&packed));
    }
});
