//! Key → hash slot: CRC16/XMODEM of the key's bytes mod 16384, honouring `{hash tags}` exactly as
//! the cluster spec's `keyHashSlot`: the tag is the bytes between the first `{` and the first `}`
//! after it, used only when non-empty.
//!
//! The CRC is computed eight bytes at a time ("slicing-by-8": eight 256-entry tables built at
//! compile time, 4 KiB). Every command's key goes through here on the caller's thread, and the
//! byte-at-a-time table loop of the `crc16` crate is one dependent lookup per byte: the slot of
//! a 17-byte key took about 30 ns that way, about 10 ns this way (`examples/microbench.rs`, the
//! two builds back to back).
//! The `crc16` crate stays as the tests' reference.

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The slot a key belongs to, computed on its raw bytes.
pub fn slot(key: &[u8]) -> u16 {
    (crc16_xmodem(hash_part(key)) as usize % SLOTS) as u16
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

/// CRC-16/XMODEM: polynomial 0x1021, initial value 0, not reflected, no final xor.
const POLY: u16 = 0x1021;

/// `TABLES[k][b]`: the CRC register after byte `b` followed by `k` zero bytes, from a zero
/// register. `TABLES[0]` is the classic byte-at-a-time table.
static TABLES: [[u16; 256]; 8] = build_tables();

const fn build_tables() -> [[u16; 256]; 8] {
    let mut t = [[0u16; 256]; 8];
    let mut b = 0;
    while b < 256 {
        let mut crc = (b as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let t = &TABLES;
    let mut crc: u16 = 0;
    let mut blocks = data.chunks_exact(8);
    for c in &mut blocks {
        // The register's two bytes meet the block's first two; each byte then needs only the
        // table for the number of bytes that follow it, and the eight lookups are independent.
        let [hi, lo] = crc.to_be_bytes();
        crc = t[7][(c[0] ^ hi) as usize]
            ^ t[6][(c[1] ^ lo) as usize]
            ^ t[5][c[2] as usize]
            ^ t[4][c[3] as usize]
            ^ t[3][c[4] as usize]
            ^ t[2][c[5] as usize]
            ^ t[1][c[6] as usize]
            ^ t[0][c[7] as usize];
    }
    for &b in blocks.remainder() {
        crc = (crc << 8) ^ t[0][((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_spec_vector_hashes_to_12739() {
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
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

    proptest! {
        // Every length around the 8-byte blocks, any bytes, any alignment in memory.
        #[test]
        fn sliced_crc_matches_the_crc16_crate(data in proptest::collection::vec(any::<u8>(), 0..80), skip in 0usize..8) {
            let d = &data[skip.min(data.len())..];
            prop_assert_eq!(crc16_xmodem(d), crc16::State::<crc16::XMODEM>::calculate(d));
        }
    }

    fn crc(k: &[u8]) -> u16 {
        crc16::State::<crc16::XMODEM>::calculate(k) % 16384
    }
}
