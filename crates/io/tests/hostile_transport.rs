//! Hostile-server tests about the transport rather than the bytes of one reply (RELIABILITY.md
//! §4), with the fake node of `common::fake`:
//!
//! * case 9: a 1 MiB reply trickled one byte every 20 ms. With commandTimeout the command fails
//!   with TIMEOUT, the client closes the socket (the server sees it), and the process does not
//!   spin meanwhile — its CPU time over the trickle stays a small fraction of the wall time, which
//!   a decoder that re-parsed the buffer on every byte, or a busy loop, would blow through;
//! * case 16: a MOVED pointing at a third, "capture" server. With TLS and verification on, the
//!   capture server (a TLS server with a certificate the client does not trust) sees a failed
//!   handshake and never an AUTH; in plaintext the client does send AUTH, password included, to
//!   whatever node the cluster names — a fact of the protocol this test pins down and the README
//!   documents (use TLS when the network or the nodes are not trusted).

mod common;

use common::fake::{Hostile, HostileHarness, Server};
use common::{assert_no_io_panic, expect_err, WITHIN};

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clustr_engine::{ErrorKind, Reply};
use clustr_io::{Event, TlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

const SECRET: &str = "S3cr3t-MARKER-pw";

// ---------------------------------------------------------------------------------------------
// Case 9: trickle

/// CPU time (user + system, every thread) this process has used, from /proc/self/stat (in
/// USER_HZ = 1/100 s ticks on Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// §4.9: a 1 MiB bulk reply trickled 1 byte / 20 ms: TIMEOUT at the deadline, the socket closed
/// by the client, no CPU spin, and the next command succeeds on a fresh connection.
#[tokio::test]
async fn a_reply_trickled_byte_by_byte_times_out_and_the_socket_is_closed_without_spinning() {
    let server = Server::start().await;
    let mut h = HostileHarness::start_with(&server, true, |c| {
        c.command_timeout_ms = Some(400);
    })
    .await;
    let mut reply = b"$1048576\r\n".to_vec();
    reply.resize(reply.len() + (1 << 20), b'x');
    reply.extend_from_slice(b"\r\n");
    server.script(Hostile::Trickle(reply, Duration::from_millis(20)));

    let (cpu0, t0) = (cpu_time(), Instant::now());
    let got = h.set(b"trigger").await;
    let err = expect_err(got, ErrorKind::Timeout.code(), "the trickled SET");
    assert!(err.message.contains("commandTimeout"), "{}", err.message);
    let conn = h.last_conn(b"trigger");
    server.wait_closed_by_client(conn).await;
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    // Closed for the stall (two timeouts without a reply), not at the end of the reply.
    assert!(wall < WITHIN, "closed after {wall:?}");
    // Idle waiting costs a few ms per second; a spinning thread costs the whole second. Half of
    // the wall time leaves room for a debug build on a loaded 2-core box.
    assert!(
        cpu < wall / 2,
        "the process used {cpu:?} of CPU during a {wall:?} trickle"
    );
    h.wait_event("NodeDown for the stall", |e| {
        matches!(e, Event::NodeDown(_, err) if err.kind == ErrorKind::Timeout
            && err.message.contains("no reply"))
    })
    .await;
    h.next_command_succeeds_on_a_fresh_connection(conn).await;
}

// ---------------------------------------------------------------------------------------------
// Case 16: MOVED to a capture server

/// A CA, a node certificate it signed (IP SAN 127.0.0.1), and a self-signed "attacker"
/// certificate for the same IP, made with the `openssl` CLI in a fresh directory.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make() -> Certs {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("rcn-transport-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Process::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl CLI");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let days = ["-days", "2"];
        run(&[
            &["req", "-x509", "-new"][..],
            &ec,
            &days,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=rcn-test-ca",
            ],
        ]
        .concat());
        run(&[
            &["req", "-new"][..],
            &ec,
            &[
                "-keyout",
                "node.key",
                "-out",
                "node.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            &[
                "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            ][..],
            &["-CAcreateserial", "-out", "node.crt", "-extfile", "ext.cnf"],
            &days,
        ]
        .concat());
        run(&[
            &["req", "-x509", "-new"][..],
            &ec,
            &days,
            &[
                "-keyout",
                "evil.key",
                "-out",
                "evil.crt",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
        ]
        .concat());
        Certs { dir }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    /// A TLS server configuration presenting `<name>.crt` with `<name>.key`.
    fn acceptor(&self, name: &str) -> TlsAcceptor {
        acceptor(&self.dir, name)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn acceptor(dir: &Path, name: &str) -> TlsAcceptor {
    let cert = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
    let key = std::fs::read(dir.join(format!("{name}.key"))).unwrap();
    let certs = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// The node answers `SET trigger` with a MOVED to `capture` for trigger's own slot.
fn moved_to(node: &Server, capture: &Server) {
    let slot = clustr_engine::slot::slot(b"trigger");
    let line = format!("-MOVED {slot} 127.0.0.1:{}\r\n", capture.port);
    node.script(Hostile::Send(line.into_bytes()));
}

/// §4.16 with TLS: the capture server's certificate does not verify, so the client gives up
/// during the TLS handshake — before a single byte of AUTH exists on the wire — and the command
/// is not sent there.
#[tokio::test]
async fn with_tls_a_moved_to_a_capture_server_never_reveals_the_password() {
    let certs = Certs::make();
    let node = Server::start_with(Some(certs.acceptor("node"))).await;
    let capture = Server::start_with(Some(certs.acceptor("evil"))).await;
    let ca = certs.read("ca.crt");
    let mut h = HostileHarness::start_with(&node, true, |c| {
        c.password = Some(SECRET.into());
        c.tls = Some(TlsConfig {
            ca_pem: Some(ca),
            ..TlsConfig::default()
        });
    })
    .await;
    assert_eq!(
        node.st().auth,
        vec![vec![SECRET.as_bytes().to_vec()]],
        "the real node got AUTH"
    );
    moved_to(&node, &capture);
    let got = h.set(b"trigger").await;
    match &got {
        // The MOVED also asked for a refresh, and the real node still claims every slot: the
        // retry may land back there.
        Ok(r) => assert_eq!(r, &Reply::Status("OK".into())),
        Err(e) => {
            assert!(
                matches!(e.kind, ErrorKind::Tls | ErrorKind::ConnectionRefused),
                "{e:?}"
            );
            assert!(!e.message.contains(SECRET), "{}", e.message);
        }
    }
    let start = Instant::now();
    while capture.st().tls_failures == 0 {
        assert!(
            start.elapsed() < WITHIN,
            "the client never tried the capture server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = capture.st();
    assert!(
        st.auth.is_empty(),
        "AUTH reached the capture server: {:?}",
        st.auth
    );
    assert!(st.log.is_empty(), "a command reached the capture server");
    drop(st);
    assert_no_io_panic();
}

/// §4.16 in plaintext: AUTH goes to whatever node the cluster names, the capture server
/// included, and the redirected command runs there. Redis Cluster has no way to authenticate
/// a node to the client without TLS; the README says so.
#[tokio::test]
async fn in_plaintext_auth_is_sent_to_whatever_node_a_moved_names() {
    let node = Server::start().await;
    let capture = Server::start().await;
    let mut h = HostileHarness::start_with(&node, true, |c| {
        c.password = Some(SECRET.into());
    })
    .await;
    moved_to(&node, &capture);
    let got = h.set(b"trigger").await;
    assert_eq!(
        got,
        Ok(Reply::Status("OK".into())),
        "answered by the capture server"
    );
    assert_eq!(
        capture.st().auth,
        vec![vec![SECRET.as_bytes().to_vec()]],
        "the capture server received the password"
    );
    assert_eq!(capture.served(b"trigger"), vec![0], "and the command");
    assert_no_io_panic();
}
