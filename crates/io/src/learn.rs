//! Learning the commands the built-in table lacks (a module's, a newer server's) from the
//! server itself, once, after the first slot map: `COMMAND LIST`, then `COMMAND INFO` for the
//! names no table knows (usually none, so a client pays one small round trip). What is learned
//! lives in the engine (`command_learn`) and routes those commands by their keys from then on.
//! A server that refuses COMMAND (renamed, or an ACL user without @connection) changes nothing:
//! unknown commands then go to a random master and follow MOVED, as before.

use bytes::BytesMut;
use clustr_engine::command_learn;
use clustr_engine::request::{Request, Target};
use clustr_engine::resp::encode_command;
use clustr_engine::topology::NodeAddr;
use clustr_engine::Reply;

use crate::driver::{Driver, Kind};

/// Which step of the exchange an internal request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Learn {
    List,
    Info,
}

/// COMMAND INFO takes the unknown names in chunks, so one reply stays small.
const INFO_CHUNK: usize = 200;

impl Driver {
    /// Asks `node` for its command list (after the first slot map).
    pub(crate) fn learn_commands(&mut self, node: NodeAddr) {
        self.learn_send(node, Learn::List, &[b"COMMAND", b"LIST"]);
    }

    fn learn_send(&mut self, node: NodeAddr, step: Learn, args: &[&[u8]]) {
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, args);
        let req = Request::new(Target::Node(node), true, self.now_ms());
        let key = self.insert(Kind::Learn(step), req, bytes.freeze());
        self.dispatch(key);
    }

    pub(crate) fn learn_reply(&mut self, key: usize, step: Learn, from: &NodeAddr, reply: Reply) {
        self.complete(key, Ok(Reply::Nil));
        match step {
            Learn::List => {
                let names = command_learn::unknown_names(&reply);
                for chunk in names.chunks(INFO_CHUNK) {
                    let mut args: Vec<&[u8]> = vec![b"COMMAND", b"INFO"];
                    args.extend(chunk.iter().map(Vec::as_slice));
                    self.learn_send(from.clone(), Learn::Info, &args);
                }
            }
            Learn::Info => {
                command_learn::learn(&reply);
            }
        }
    }
}
