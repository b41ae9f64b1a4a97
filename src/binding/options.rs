//! JS options → `clustr_io::Config`. Validation messages name the option, never its value
//! (a password must not leak into an error).

use clustr_engine::request::RetryPolicy;
use clustr_engine::route::ReplicaPolicy;
use clustr_engine::topology::NodeAddr;
use clustr_io::{Config, TlsConfig};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

#[napi(object)]
pub struct Seed {
    pub host: String,
    pub port: u32,
}

/// Node's `tls` options; the shim turns strings and arrays of PEM into one Buffer each.
#[napi(object)]
pub struct TlsOptions {
    pub ca: Option<Buffer>,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
    pub servername: Option<String>,
    pub reject_unauthorized: Option<bool>,
}

impl TlsOptions {
    fn into_config(self) -> napi::Result<TlsConfig> {
        let pem = |b: Option<Buffer>| b.map(|b| b.to_vec());
        let cfg = TlsConfig {
            ca_pem: pem(self.ca),
            cert_pem: pem(self.cert),
            key_pem: pem(self.key),
            servername: self.servername.filter(|s| !s.is_empty()),
            reject_unauthorized: self.reject_unauthorized.unwrap_or(true),
        };
        // Here rather than on the first connection: a bad PEM is the caller's mistake, reported
        // once as INVALID_ARG by the constructor.
        cfg.check().map_err(|e| invalid(&e))?;
        Ok(cfg)
    }
}

/// One natMap entry: the address the cluster announces → the address to dial.
#[napi(object)]
pub struct NatEntry {
    pub from_host: String,
    pub from_port: u32,
    pub host: String,
    pub port: u32,
}

/// The options the shim has already normalised from redis-clustr's config.
#[napi(object)]
pub struct Options {
    pub seeds: Vec<Seed>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Option<f64>,
    pub slaves: Option<String>,
    pub slot_interval: Option<f64>,
    pub max_queue_length: Option<f64>,
    pub queue_shift: Option<bool>,
    pub wait: Option<f64>,
    pub max_redirections: Option<u32>,
    pub retry_budget: Option<f64>,
    pub command_timeout: Option<f64>,
    /// µs the JS thread may stay awake for a reply after a lone write (0: never; see `spin`).
    pub spin_micros: Option<f64>,
    pub tls: Option<TlsOptions>,
    pub nat_map: Option<Vec<NatEntry>>,
    /// `redisOptions.prefix` as bytes; taken by `NativeCluster` (it is not io configuration).
    pub prefix: Option<Buffer>,
    /// The createClient hook is in use: nodes are reached through JS clients (JS links).
    pub hook: Option<bool>,
}

fn invalid(msg: &str) -> napi::Error {
    napi::Error::new(napi::Status::InvalidArg, msg.to_string())
}

impl Options {
    pub fn into_config(self) -> napi::Result<Config> {
        if self.seeds.is_empty() {
            return Err(invalid("servers must list at least one {host, port}"));
        }
        let mut seeds = Vec::with_capacity(self.seeds.len());
        for s in self.seeds {
            if s.port == 0 || s.port > 65535 {
                return Err(invalid("every server needs a port between 1 and 65535"));
            }
            seeds.push(NodeAddr::new(s.host, s.port as u16));
        }
        let replicas = match self.slaves.as_deref() {
            None => ReplicaPolicy::Never,
            Some(s) => ReplicaPolicy::parse(s)
                .ok_or_else(|| invalid("slaves must be 'never', 'share' or 'always'"))?,
        };
        let tls = self.tls.map(TlsOptions::into_config).transpose()?;
        let port = |p: u32| u16::try_from(p).ok().filter(|&p| p > 0);
        let mut nat_map = clustr_io::NatMap::default();
        for e in self.nat_map.unwrap_or_default() {
            let (Some(fp), Some(tp)) = (port(e.from_port), port(e.port)) else {
                return Err(invalid("natMap ports must be between 1 and 65535"));
            };
            nat_map
                .table
                .insert(NodeAddr::new(e.from_host, fp), NodeAddr::new(e.host, tp));
        }
        let defaults = RetryPolicy::default();
        let ms = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64);
        Ok(Config {
            seeds,
            username: self.username,
            password: self.password,
            connect_timeout_ms: ms(self.connect_timeout).unwrap_or(10_000),
            retry: RetryPolicy {
                max_redirections: self
                    .max_redirections
                    .map_or(defaults.max_redirections, |m| m.min(255) as u8),
                budget_ms: ms(self.retry_budget).unwrap_or(defaults.budget_ms),
                replicas,
            },
            slot_interval_ms: ms(self.slot_interval),
            max_queue_length: ms(self.max_queue_length).map(|v| v as usize),
            queue_shift: self.queue_shift.unwrap_or(true),
            wait_ms: ms(self.wait),
            command_timeout_ms: ms(self.command_timeout).filter(|&t| t > 0),
            tls,
            nat_map,
            js_links: self.hook.unwrap_or(false),
        })
    }
}

/// Turns the shim's natMap function into the io layer's resolver: one call on the JS thread per
/// new connection, awaited by that connection's task only.
pub fn nat_resolver(
    f: napi::threadsafe_function::ThreadsafeFunction<
        String,
        Option<Seed>,
        String,
        napi::Status,
        false,
        true,
    >,
) -> clustr_io::NatResolver {
    let f = std::sync::Arc::new(f);
    std::sync::Arc::new(move |addr: &NodeAddr| {
        let (f, key) = (f.clone(), addr.to_string());
        Box::pin(async move {
            match f.call_async_catch(key).await {
                Ok(None) => Ok(None),
                Ok(Some(s)) => match u16::try_from(s.port).ok().filter(|&p| p > 0) {
                    Some(p) if !s.host.is_empty() => Ok(Some(NodeAddr::new(s.host, p))),
                    _ => Err("the natMap function must return {host, port} or null".to_string()),
                },
                // The shim's wrapper already turned a throw into a message naming natMap.
                Err(e) => Err(e.reason.chars().take(300).collect()),
            }
        })
    })
}
