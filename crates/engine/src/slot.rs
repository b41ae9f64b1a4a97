//! Key → hash slot: CRC16/XMODEM of the key's bytes mod 16384, honouring `{hash tags}` exactly as
//! the cluster spec's `keyHashSlot`: the tag is the bytes between the first `{` and the first `}`
//! after it, used only when non-empty.

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The slot a key belongs to, computed on its raw bytes.
pub fn slot(key: &[u8]) -> u16 {
    (crc16::State::<crc16::XMODEM>::calculate(hash_part(key)) as usize % SLOTS) as u16
}

fn hash_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&c| c == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vector_hashes_to_12739() {
        assert_eq!(slot(b"123456789"), 12739);
    }

    #[test]
    fn hash_tags_follow_the_cluster_spec() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{bar}baz"), slot(b"bar"));
        // Empty tag: the whole key is hashed.
        assert_eq!(slot(b"foo{}{bar}"), crc(b"foo{}{bar}"));
        assert_eq!(slot(b"{}"), crc(b"{}"));
        // Unclosed or reversed braces: the whole key.
        assert_eq!(slot(b"{"), crc(b"{"));
        assert_eq!(slot(b"}{"), crc(b"}{"));
        // Only the first tag counts.
        assert_eq!(slot(b"{a}{b}"), slot(b"a"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn binary_keys_are_hashed_as_bytes() {
        assert_eq!(slot(&[0xff, 0xfe, 0x00]), crc(&[0xff, 0xfe, 0x00]));
        assert_ne!(slot(&[0xff]), slot("\u{fffd}".as_bytes()));
    }

    fn crc(k: &[u8]) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(k) % 16384
    }
}
