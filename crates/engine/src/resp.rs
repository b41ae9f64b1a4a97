//! RESP2 values and a streaming decoder/encoder.
//!
//! The decoder is incremental: `Decoder::decode` consumes nothing and returns `Ok(None)` when the
//! buffer holds only part of a frame, and remembers how many bytes a pending bulk needs so a large
//! reply trickling in is not re-parsed from the start on every read (that would be O(n²)).
//! Limits (bulk size, aggregate length, nesting depth, line length) are checked before anything is
//! allocated, so a hostile header cannot make us reserve memory in proportion to what it claims.

use bytes::{Buf, Bytes, BytesMut};

/// A reply from a Redis server (RESP2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(Bytes),
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a status, error or bulk reply, if it is one of those.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Status(b) | Reply::Error(b) | Reply::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

/// Why a byte stream could not be decoded. After any of these the connection must be closed:
/// nobody knows any more which reply belongs to which request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

/// Upper bounds enforced while decoding.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk: usize,
    pub max_aggregate: usize,
    pub max_depth: usize,
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 512 MiB is the server's own proto-max-bulk-len default.
        Limits {
            max_bulk: 512 * 1024 * 1024,
            max_aggregate: u32::MAX as usize,
            max_depth: 128,
            max_line: 64 * 1024,
        }
    }
}

/// The most entries reserved up front for an array, whatever its header claims.
const MAX_PREALLOC: usize = 1024;

/// A streaming RESP2 decoder. Validation is resumable: `pos` and `open` remember how far the
/// current frame has been checked, so each byte is examined once however the frame is chunked
/// (re-parsing from the start on every read would be quadratic for a big array arriving in
/// pieces). The value is built in one pass once the whole frame is there.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    /// Buffer length needed before validation can make progress.
    need: usize,
    /// Offset of the next element to validate in the current frame.
    pos: usize,
    /// Elements still expected by each open array, innermost last.
    open: Vec<usize>,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// How long the buffer must be before the current frame can make progress (0: no frame
    /// begun). For a bulk string whose header has been read, this is the whole payload's end, so
    /// a reader can make room for it once instead of growing its buffer step by step.
    pub fn need(&self) -> usize {
        self.need
    }

    /// Decodes one frame from the front of `buf`, consuming exactly its bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
        if buf.len() < self.need || buf.is_empty() {
            return Ok(None);
        }
        let end = match self.scan(&buf[..]) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        self.reset();
        // Shared Bytes: bulk payloads become zero-copy slices of the read buffer.
        let bytes = buf.split_to(end).freeze();
        match Self::build(&bytes, 0)? {
            (reply, used) if used == end => Ok(Some(reply)),
            _ => Err(ProtocolError("inconsistent frame".into())),
        }
    }

    fn reset(&mut self) {
        self.need = 0;
        self.pos = 0;
        self.open.clear();
    }

    /// Validates from `pos` on without allocating per element; returns the frame's end once it
    /// is complete, or None (with `need` set) when more bytes are required.
    fn scan(&mut self, b: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let pos = self.pos;
            if pos >= b.len() {
                self.need = pos + 1;
                return Ok(None);
            }
            // Judged before waiting for the line's end: a peer that sends garbage and no CRLF
            // must get an error now, not a connection that waits for more.
            if !matches!(b[pos], b'+' | b'-' | b':' | b'$' | b'*') {
                return Err(ProtocolError(format!("unknown type byte 0x{:02x}", b[pos])));
            }
            let Some(line_end) = find_crlf(b, pos + 1, self.limits.max_line)? else {
                self.need = b.len() + 1;
                return Ok(None);
            };
            let line = &b[pos + 1..line_end];
            let next = line_end + 2;
            let end = match b[pos] {
                b'+' | b'-' => next,
                b':' => {
                    parse_int(line)?;
                    next
                }
                b'$' => match parse_int(line)? {
                    -1 => next,
                    len => {
                        let len = self.length(len, self.limits.max_bulk, "bulk")?;
                        let end = next + len + 2;
                        if b.len() < end {
                            self.need = end;
                            return Ok(None);
                        }
                        if &b[next + len..end] != b"\r\n" {
                            return Err(ProtocolError("bulk string not terminated by CRLF".into()));
                        }
                        end
                    }
                },
                b'*' => match parse_int(line)? {
                    -1 => next,
                    n => match self.length(n, self.limits.max_aggregate, "array")? {
                        0 => next,
                        n => {
                            if self.open.len() >= self.limits.max_depth {
                                return Err(ProtocolError("nesting too deep".into()));
                            }
                            self.open.push(n);
                            self.pos = next;
                            continue;
                        }
                    },
                },
                t => return Err(ProtocolError(format!("unknown type byte 0x{t:02x}"))),
            };
            self.pos = end;
            // One element is complete: close every array it completes.
            loop {
                match self.open.last_mut() {
                    None => return Ok(Some(end)),
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }

    fn length(&self, n: i64, max: usize, what: &str) -> Result<usize, ProtocolError> {
        if n < 0 || n as u64 > max as u64 {
            return Err(ProtocolError(format!("{what} length {n} out of range")));
        }
        Ok(n as usize)
    }

    /// Builds the value of a frame already validated by `parse`.
    fn build(b: &Bytes, pos: usize) -> Result<(Reply, usize), ProtocolError> {
        let line_end = find_crlf(b, pos + 1, usize::MAX)?.ok_or_else(truncated)?;
        let line = &b[pos + 1..line_end];
        let next = line_end + 2;
        Ok(match b[pos] {
            b'+' => (Reply::Status(b.slice(pos + 1..line_end)), next),
            b'-' => (Reply::Error(b.slice(pos + 1..line_end)), next),
            b':' => (Reply::Int(parse_int(line)?), next),
            b'$' => match parse_int(line)? {
                -1 => (Reply::Nil, next),
                len => {
                    let len = len as usize;
                    (Reply::Bulk(b.slice(next..next + len)), next + len + 2)
                }
            },
            b'*' => match parse_int(line)? {
                -1 => (Reply::Nil, next),
                n => {
                    let n = n as usize;
                    let mut items = Vec::with_capacity(n.min(MAX_PREALLOC));
                    let mut at = next;
                    for _ in 0..n {
                        let (item, end) = Self::build(b, at)?;
                        items.push(item);
                        at = end;
                    }
                    (Reply::Array(items), at)
                }
            },
            _ => return Err(truncated()),
        })
    }
}

fn truncated() -> ProtocolError {
    ProtocolError("truncated frame".into())
}

/// Position of the CR of the first CRLF at or after `from`, or None if not there yet.
fn find_crlf(b: &[u8], from: usize, max_line: usize) -> Result<Option<usize>, ProtocolError> {
    let window = &b[from.min(b.len())..];
    match window.iter().position(|&c| c == b'\r' || c == b'\n') {
        // The limit holds whether or not the CRLF has arrived yet (else it would depend on how
        // the bytes happened to be split into reads).
        Some(i) if i > max_line => Err(ProtocolError("line too long".into())),
        Some(i) => {
            let at = from + i;
            if b[at] == b'\n' {
                return Err(ProtocolError("LF without CR".into()));
            }
            if at + 1 >= b.len() {
                return Ok(None);
            }
            if b[at + 1] != b'\n' {
                return Err(ProtocolError("CR without LF".into()));
            }
            Ok(Some(at))
        }
        None if window.len() > max_line => Err(ProtocolError("line too long".into())),
        None => Ok(None),
    }
}

/// Parses a RESP integer strictly: optional '-', then 1..=19 digits, no spaces or '+'.
fn parse_int(s: &[u8]) -> Result<i64, ProtocolError> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError("invalid integer".into()));
    }
    // Negative numbers accumulate downwards: i64::MIN has no positive counterpart.
    let mut v: i64 = 0;
    for &d in digits {
        let d = (d - b'0') as i64;
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or_else(|| ProtocolError("integer overflow".into()))?;
    }
    Ok(v)
}

/// Appends a command (an array of bulk strings) to `out`.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    out.reserve(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    put_header(out, b'*', args.len());
    for a in args {
        let a = a.as_ref();
        put_header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn put_header(out: &mut BytesMut, kind: u8, n: usize) {
    let mut tmp = [0u8; 24];
    let mut i = tmp.len();
    let mut v = n;
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(&tmp[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Encodes a reply as a server would send it (tests and fake servers use this).
pub fn encode_reply(out: &mut BytesMut, r: &Reply) {
    match r {
        Reply::Status(s) => {
            out.extend_from_slice(b"+");
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Error(s) => {
            out.extend_from_slice(b"-");
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Reply::Bulk(b) => {
            put_header(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::Array(items) => {
            put_header(out, b'*', items.len());
            for i in items {
                encode_reply(out, i);
            }
        }
    }
}

/// Drops `n` bytes from the front of a buffer (kept for callers that skip data).
pub fn advance(buf: &mut BytesMut, n: usize) {
    buf.advance(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8]) -> Result<Option<Reply>, ProtocolError> {
        Decoder::default().decode(&mut BytesMut::from(bytes))
    }

    fn sample() -> Reply {
        Reply::Array(vec![
            Reply::Status("OK".into()),
            Reply::Int(-42),
            Reply::Bulk(Bytes::from_static(b"a\r\nb\0")),
            Reply::Nil,
            Reply::Array(vec![Reply::Error("ERR x".into()), Reply::Array(vec![])]),
        ])
    }

    #[test]
    fn a_frame_round_trips_at_every_split_point() {
        let mut enc = BytesMut::new();
        encode_reply(&mut enc, &sample());
        for split in 0..enc.len() {
            let mut d = Decoder::default();
            let mut buf = BytesMut::from(&enc[..split]);
            assert_eq!(d.decode(&mut buf).unwrap(), None, "split {split}");
            assert_eq!(buf.len(), split, "nothing consumed on a prefix");
            buf.extend_from_slice(&enc[split..]);
            assert_eq!(d.decode(&mut buf).unwrap(), Some(sample()));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn two_frames_decode_one_after_the_other() {
        let mut buf = BytesMut::from(&b":1\r\n$2\r\nhi\r\n"[..]);
        let mut d = Decoder::default();
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Reply::Int(1)));
        assert_eq!(d.decode(&mut buf).unwrap(), Some(Reply::Bulk("hi".into())));
        assert_eq!(d.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"&x\r\n"[..],
            b"$-2\r\n",
            b"*-2\r\n",
            b"$\r\n",
            b"$ 1\r\n",
            b"$+1\r\n",
            b":99999999999999999999\r\n",
            b"+ok\rx",
            b"+ok\n",
            b"$2\r\nabXY",
        ] {
            assert!(dec(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn huge_headers_are_refused_before_allocating() {
        assert!(
            dec(b"$1073741824\r\n").is_err(),
            "1 GiB is above the 512 MiB default"
        );
        let mut d = Decoder::new(Limits {
            max_bulk: 16 << 20,
            ..Limits::default()
        });
        assert!(d
            .decode(&mut BytesMut::from(&b"$1073741824\r\n"[..]))
            .is_err());
        assert!(dec(b"*4294967296\r\n").is_err());
        // A plausible count with no elements yet is just incomplete.
        assert_eq!(dec(b"*4294967295\r\n").unwrap(), None);
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = b"*1\r\n".repeat(100_000);
        assert!(dec(&deep).is_err());
    }

    #[test]
    fn a_large_bulk_fed_in_small_pieces_is_not_reparsed_each_time() {
        let payload = vec![b'x'; 1 << 20];
        let mut enc = BytesMut::new();
        encode_reply(&mut enc, &Reply::Bulk(payload.clone().into()));
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in enc.chunks(7) {
            buf.extend_from_slice(chunk);
            if let Some(r) = d.decode(&mut buf).unwrap() {
                got = Some(r);
            }
        }
        assert_eq!(got, Some(Reply::Bulk(payload.into())));
    }

    #[test]
    fn once_a_bulk_header_is_read_need_is_the_end_of_its_payload() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"$1048576\r\nxyz"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        // 10 header bytes, the payload, its CRLF: what a reader should make room for at once.
        assert_eq!(d.need(), 10 + 1048576 + 2);
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&b"+OK"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(
            d.need(),
            4,
            "a line without its end needs only one more byte"
        );
    }

    #[test]
    fn a_big_nested_array_in_small_chunks_resumes_where_it_stopped() {
        let inner = |i: i64| Reply::Array(vec![Reply::Int(i), Reply::Bulk(format!("v{i}").into())]);
        let frame = Reply::Array((0..20_000).map(inner).collect());
        let mut enc = BytesMut::new();
        encode_reply(&mut enc, &frame);
        encode_reply(&mut enc, &Reply::Status("next".into()));
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in enc.chunks(61) {
            buf.extend_from_slice(chunk);
            while let Some(r) = d.decode(&mut buf).unwrap() {
                got.push(r);
            }
        }
        assert_eq!(got, vec![frame, Reply::Status("next".into())]);
        assert!(buf.is_empty());
    }

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut out = BytesMut::new();
        encode_command(&mut out, &[&b"SET"[..], b"k", b""]);
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
