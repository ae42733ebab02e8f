//! A protobuf field walker over a byte slice, for the messages read in place
//! (the worker's frequent frames and [`ExecutorRequest`](super::ExecutorRequest)).
//!
//! It accepts a subset of what prost's decoder accepts, and never more: keys,
//! varints and lengths are checked the way prost checks them (the tests
//! compare this varint reader with prost's on every length and overflow). Groups (wire types 3 and 4, long deprecated) are
//! not walked: the walk gives up, and the caller hands the bytes to prost,
//! which skips them or names the error.

/// One field's value.
pub(crate) enum Field<'a> {
    Varint(u64),
    /// A length-delimited value (string, bytes, sub-message).
    Bytes(&'a [u8]),
    /// A fixed 32- or 64-bit value; nothing here reads those.
    Fixed,
}

/// Call `f` for each field of the message in `buf`, in order. `None` if the
/// bytes are malformed, hold a group, or `f` returns `None`.
pub(crate) fn fields<'a>(mut buf: &'a [u8], mut f: impl FnMut(u32, Field<'a>) -> Option<()>) -> Option<()> {
    while !buf.is_empty() {
        let key = decode_varint(&mut buf)?;
        // prost: a key over u32::MAX is invalid, and so is tag 0.
        let key = u32::try_from(key).ok()?;
        let tag = key >> 3;
        if tag == 0 {
            return None;
        }
        let value = match key & 7 {
            0 => Field::Varint(decode_varint(&mut buf)?),
            2 => {
                let len = usize::try_from(decode_varint(&mut buf)?).ok()?;
                let (value, rest) = buf.split_at_checked(len)?;
                buf = rest;
                Field::Bytes(value)
            }
            1 => {
                buf = buf.get(8..)?;
                Field::Fixed
            }
            5 => {
                buf = buf.get(4..)?;
                Field::Fixed
            }
            _ => return None,
        };
        f(tag, value)?;
    }
    Some(())
}

/// A varint, as prost reads one: at most 10 bytes, the 10th at most 1
/// (so that the value fits 64 bits). Non-canonical encodings are accepted,
/// as prost accepts them.
#[inline]
pub(crate) fn decode_varint(buf: &mut &[u8]) -> Option<u64> {
    let bytes = *buf;
    // Keys and short lengths: one byte.
    if let Some((&b, rest)) = bytes.split_first().filter(|(b, _)| **b < 0x80) {
        *buf = rest;
        return Some(u64::from(b));
    }
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        if i == 9 && b > 1 {
            return None;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Where `sub`, a slice of `whole`, starts in it.
pub(crate) fn offset_in(whole: &[u8], sub: &[u8]) -> usize {
    (sub.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our varint reader agrees with prost's on valid, overlong, truncated and overflowing input.
    #[test]
    fn varints_read_like_prost() {
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x80], vec![0xff; 10], vec![0xff; 11]];
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            prost::encoding::encode_varint(v, &mut b);
            cases.push(b.clone());
            b.push(0x2a); // a trailing byte that is not part of it
            cases.push(b);
        }
        cases.push(vec![0x80, 0x00]); // overlong zero
        for last in 0..=0xffu8 {
            let mut b = vec![0xff; 9];
            b.push(last);
            cases.push(b);
        }
        for case in cases {
            let (mut ours, mut theirs) = (&case[..], &case[..]);
            let a = decode_varint(&mut ours);
            let b = prost::encoding::decode_varint(&mut theirs).ok();
            assert_eq!(a, b, "{case:02x?}");
            if a.is_some() {
                assert_eq!(ours, theirs, "{case:02x?}: same bytes consumed");
            }
        }
    }
}
