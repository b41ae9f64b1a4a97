//! Client-side errors and the codes JS sees (SPEC §3). Server errors are not here: they travel as
//! `Reply::Error` and keep their first word as the code. No message built here ever includes a
//! password or a caller's argument values.

use std::fmt;

/// The client error codes of SPEC §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NoKey,
    InvalidArg,
    Closed,
    QueueFull,
    Timeout,
    MaxRedirections,
    ConnectionRefused,
    /// The node refused the handshake (AUTH with wrong credentials, ACL denies READONLY).
    HandshakeFailed,
    /// TLS failed: the certificate did not verify, the server wants a client certificate, or the
    /// peer does not speak TLS. Not ECONNREFUSED: retrying will not help until the setup changes.
    Tls,
    /// The connection dropped after a write was sent: it may or may not have been applied.
    ConnectionLost,
    NotACluster,
    NoSlotMap,
    Protocol,
    ClusterDown,
    /// The createClient hook threw when asked for a node's client.
    CreateClientFailed,
    /// The createClient hook returned something that is not a node_redis-compatible client.
    CreateClientInvalid,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NoKey => "NO_KEY",
            ErrorKind::InvalidArg => "INVALID_ARG",
            ErrorKind::Closed => "CLOSED",
            ErrorKind::QueueFull => "QUEUE_FULL",
            ErrorKind::Timeout => "TIMEOUT",
            ErrorKind::MaxRedirections => "MAX_REDIRECTIONS",
            ErrorKind::ConnectionRefused => "ECONNREFUSED",
            ErrorKind::HandshakeFailed => "HANDSHAKE_FAILED",
            ErrorKind::Tls => "TLS",
            ErrorKind::ConnectionLost => "CONNECTION_LOST",
            ErrorKind::NotACluster => "NOT_A_CLUSTER",
            ErrorKind::NoSlotMap => "NO_SLOT_MAP",
            ErrorKind::Protocol => "PROTOCOL",
            ErrorKind::ClusterDown => "CLUSTERDOWN",
            ErrorKind::CreateClientFailed => "CREATE_CLIENT_FAILED",
            ErrorKind::CreateClientInvalid => "CREATE_CLIENT_INVALID",
        }
    }

    /// Every kind, for lookups by code.
    pub const ALL: [ErrorKind; 16] = {
        use ErrorKind::*;
        [
            NoKey,
            InvalidArg,
            Closed,
            QueueFull,
            Timeout,
            MaxRedirections,
            ConnectionRefused,
            HandshakeFailed,
            Tls,
            ConnectionLost,
            NotACluster,
            NoSlotMap,
            Protocol,
            ClusterDown,
            CreateClientFailed,
            CreateClientInvalid,
        ]
    };

    /// The kind whose `code()` is `code` (for errors the embedder reports by code).
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// A client-side error: a code and a human sentence saying what failed and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// For NO_SLOT_MAP: what each seed said, as (address, code, message).
    pub causes: Vec<(String, String, String)>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            causes: Vec::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_its_kind() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
        }
        assert_eq!(ErrorKind::from_code("WRONGTYPE"), None);
    }
}
