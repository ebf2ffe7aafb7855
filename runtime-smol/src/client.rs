//! The public face of the smol driver: a [`ClientCore`] whose commands reach the session
//! task over a smol channel.

use smol::Async;
use unchoke_driver::tracker_client::bind_udp;
use unchoke_driver::{ClientConfig, ClientCore, ClientError, EVENT_BACKLOG};

use crate::session_task::SessionTask;

/// A BitTorrent client on `smol`: one session task owns the core's `Session`, with the
/// socket tasks on the same thread (a `LocalExecutor`) and disk work on smol's blocking
/// pool. Its methods (`add_torrent`, `stats`, `events`, `shutdown`, …) are
/// [`ClientCore`]'s, shared with the mio driver; they block the caller.
#[derive(Debug)]
pub struct Client {
    core: ClientCore,
}

impl Client {
    /// Binds the listener (if any) and starts the session task on a thread of its own.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let (listener, local_addr) = match config.listen {
            Some(addr) => {
                let listen_err = |source| ClientError::Listen {
                    addr: addr.to_string(),
                    source,
                };
                let std_listener = unchoke_driver::bind_listener(addr).map_err(listen_err)?;
                let l = Async::new(std_listener).map_err(listen_err)?;
                let local = l.get_ref().local_addr().map_err(listen_err)?;
                (Some(l), Some(local))
            }
            None => (None, None),
        };
        // Always one UDP socket: the DHT's, and UDP trackers' exchanges (the session's).
        let (socket, dht_addr) = bind_udp(config.dht.as_ref(), local_addr)?;
        let udp = Async::new(socket).map_err(ClientError::Start)?;
        let (commands, command_rx) = smol::channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(EVENT_BACKLOG);
        let cfg = config.clone();
        let thread = std::thread::Builder::new()
            .name("unchoke-smol".into())
            .spawn(move || {
                let ex = std::rc::Rc::new(smol::LocalExecutor::new());
                let task = SessionTask::new(ex.clone(), cfg, listener, udp, command_rx, event_tx);
                smol::block_on(ex.run(task.run()));
            })
            .map_err(ClientError::Start)?;
        let send = Box::new(move |c| commands.send_blocking(c).map_err(|_| ClientError::Stopped));
        Ok(Client {
            core: ClientCore::new(send, events, local_addr, config, thread).with_dht_addr(dht_addr),
        })
    }
}

impl std::ops::Deref for Client {
    type Target = ClientCore;
    fn deref(&self) -> &ClientCore {
        &self.core
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut ClientCore {
        &mut self.core
    }
}
