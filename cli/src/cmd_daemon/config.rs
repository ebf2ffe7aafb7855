//! `unchoke daemon --config FILE`: the daemon's settings from a TOML file, its keys the
//! flags' names (`download-dir = "/srv/torrents"`), and the command line over it.
//!
//! A key the daemon does not know, or a value it cannot use, is a usage error naming the
//! file, the line and the key: a typo in a config file must not be silently ignored (the
//! daemon would run with a setting the user believes changed, on a public address perhaps).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::auth::Credentials;
use super::{DEFAULT_LISTEN, DEFAULT_RPC, DaemonArgs};
use crate::error::CliError;
use crate::runtime::Runtime;
use unchoke_core::session::Transport;

/// The file's keys. Relative paths are taken from the file's directory, not from where the
/// daemon happens to start.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    session_dir: Option<PathBuf>,
    download_dir: Option<PathBuf>,
    rpc: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "runtime")]
    runtime: Option<Runtime>,
    dht: Option<bool>,
    dht_routers: Option<String>,
    lsd: Option<bool>,
    #[serde(default, deserialize_with = "transport")]
    transport: Option<Transport>,
    #[serde(default, deserialize_with = "credentials")]
    rpc_auth: Option<Credentials>,
    rpc_username: Option<String>,
    rpc_password: Option<String>,
    watch_dir: Option<PathBuf>,
}

/// The daemon's settings: the command line's, else the config file's, else the defaults.
#[derive(Debug)]
pub(crate) struct Settings {
    /// `session-dir` (`None`: the default under the user's config directory).
    pub(crate) session_dir: Option<PathBuf>,
    /// `download-dir` (`None`: ~/Downloads).
    pub(crate) download_dir: Option<PathBuf>,
    /// `rpc`.
    pub(crate) rpc: SocketAddr,
    /// `listen`.
    pub(crate) listen: SocketAddr,
    /// `runtime`.
    pub(crate) runtime: Runtime,
    /// `dht`: whether to run a DHT node.
    pub(crate) dht: bool,
    /// `dht-routers`, as the flag takes it.
    pub(crate) dht_routers: Option<String>,
    /// `lsd`: whether to run local service discovery.
    pub(crate) lsd: bool,
    /// `transport`: which transports peer connections are dialled over.
    pub(crate) transport: Transport,
    /// `rpc-auth`: the user every request must authenticate as.
    pub(crate) auth: Option<Credentials>,
    /// `watch-dir`.
    pub(crate) watch_dir: Option<PathBuf>,
}

/// The settings of `args`, over the file `--config` names if any.
pub(crate) fn resolve(args: &DaemonArgs) -> Result<Settings, CliError> {
    let file = match &args.config {
        Some(path) => load(path)?,
        None => FileConfig::default(),
    };
    let file_auth = match (file.rpc_auth, file.rpc_username, file.rpc_password) {
        (auth, None, None) => auth,
        (None, Some(user), Some(password)) => {
            Some(Credentials::new(&user, &password).map_err(|e| {
                CliError::usage(format!("{}: rpc-username/rpc-password: {e}", shown(args)))
            })?)
        }
        (Some(_), _, _) => {
            return Err(CliError::usage(format!(
                "{}: give either `rpc-auth` or `rpc-username` and `rpc-password`, not both",
                shown(args)
            )));
        }
        (None, _, _) => {
            return Err(CliError::usage(format!(
                "{}: `rpc-username` and `rpc-password` go together",
                shown(args)
            )));
        }
    };
    Ok(Settings {
        session_dir: args.session_dir.clone().or(file.session_dir),
        download_dir: args.download_dir.clone().or(file.download_dir),
        rpc: args.rpc.or(file.rpc).unwrap_or(DEFAULT_RPC),
        listen: args.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
        runtime: args.runtime.or(file.runtime).unwrap_or(Runtime::Mio),
        dht: !args.no_dht && file.dht.unwrap_or(true),
        dht_routers: args.dht_routers.clone().or(file.dht_routers),
        lsd: !args.no_lsd && file.lsd.unwrap_or(true),
        transport: args.transport.or(file.transport).unwrap_or(Transport::Both),
        auth: args.rpc_auth.clone().or(file_auth),
        watch_dir: args.watch_dir.clone().or(file.watch_dir),
    })
}

/// The config file's name for messages.
fn shown(args: &DaemonArgs) -> String {
    args.config
        .as_deref()
        .map_or_else(String::new, |p| format!("config file {}", p.display()))
}

/// Reads and checks the file.
fn load(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("config file {}: {e}", path.display())))?;
    let mut config: FileConfig = toml::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "config file {}{}: {}",
            path.display(),
            e.span()
                .map_or_else(String::new, |s| where_in(&text, s.start)),
            e.message().trim_end()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    for p in [
        &mut config.session_dir,
        &mut config.download_dir,
        &mut config.watch_dir,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(config)
}

/// `, line N (`the line`)` for a byte offset into `text`: the line names the key.
fn where_in(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let number = before.matches('\n').count() + 1;
    let line = text.lines().nth(number - 1).unwrap_or("").trim();
    if line.is_empty() {
        format!(", line {number}")
    } else {
        let line: String = line.chars().filter(|c| !c.is_control()).collect();
        format!(", line {number} (`{line}`)")
    }
}

/// `runtime = "mio"` or `"smol"`, as `--runtime`.
fn runtime<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Runtime>, D::Error> {
    let name = String::deserialize(d)?;
    <Runtime as clap::ValueEnum>::from_str(&name, true)
        .map(Some)
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "runtime: expected \"mio\" or \"smol\", not {name:?}"
            ))
        })
}

/// `transport = "tcp" | "utp" | "both"`, as `--transport`.
fn transport<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Transport>, D::Error> {
    let name = String::deserialize(d)?;
    name.parse::<Transport>()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("transport: {e}")))
}

/// `rpc-auth = "USER:PASSWORD"`, as `--rpc-auth`.
fn credentials<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Credentials>, D::Error> {
    let text = String::deserialize(d)?;
    Credentials::parse(&text)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("rpc-auth: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("daemon.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        load(&path).map_err(|e| e.message)
    }

    #[test]
    fn every_key_is_read() {
        let c = parse(
            "session-dir = \"/s\"\ndownload-dir = \"dl\"\nrpc = \"127.0.0.1:9\"\n\
             listen = \"0.0.0.0:7\"\nruntime = \"smol\"\ndht = false\n\
             dht-routers = \"none\"\nlsd = false\nrpc-auth = \"u:p\"\nwatch-dir = \"/w\"\n\
             transport = \"utp\"\n",
        )
        .expect("valid");
        assert_eq!(c.session_dir.as_deref(), Some(Path::new("/s")));
        assert!(
            c.download_dir
                .as_deref()
                .is_some_and(|d| d.ends_with("dl") && d.is_absolute())
        );
        assert_eq!(c.rpc, "127.0.0.1:9".parse().ok());
        assert_eq!(c.runtime, Some(Runtime::Smol));
        assert_eq!((c.dht, c.lsd), (Some(false), Some(false)));
        assert_eq!(c.transport, Some(Transport::Utp));
        assert_eq!(
            c.rpc_auth.map(|a| a.user().to_string()).as_deref(),
            Some("u")
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_line() {
        let e = parse("rpc = \"127.0.0.1:9\"\nrpc-pasword = \"x\"\n").expect_err("typo");
        assert!(e.contains("line 2") && e.contains("rpc-pasword"), "{e}");
        let e = parse("\nrpc = \"nonsense\"\n").expect_err("bad address");
        assert!(e.contains("line 2") && e.contains("rpc = "), "{e}");
        let e = parse("runtime = \"tokio\"\n").expect_err("bad runtime");
        assert!(e.contains("line 1") && e.contains("tokio"), "{e}");
        let e = parse("dht = true\ntransport = \"quic\"\n").expect_err("bad transport");
        assert!(e.contains("line 2") && e.contains("quic"), "{e}");
    }
}
