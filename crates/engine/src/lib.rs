//! The cluster core of redis-clustr-native, free of I/O: no tokio, napi, sockets, clocks or
//! randomness. Everything here takes its inputs (replies, the time, a random number) as
//! arguments and returns decisions as data, so it can be tested deterministically and driven by
//! any transport.

pub mod command;
pub mod command_learn;
mod command_table;
pub mod error;
pub mod fanout;
pub mod keys;
pub mod prefix;
pub mod redirect;
pub mod request;
pub mod resp;
pub mod route;
pub mod slot;
pub mod split;
pub mod topology;
mod topology_parse;

pub use error::{Error, ErrorKind};
pub use resp::Reply;
