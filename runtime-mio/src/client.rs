//! The public face of the mio driver: a [`ClientCore`] whose commands reach the event loop
//! through a channel plus the loop's `mio::Waker`.

use std::sync::Arc;

use mio::{Poll, Waker};
use unchoke_driver::{ClientConfig, ClientCore, ClientError, EVENT_BACKLOG};

use crate::event_loop::{EventLoop, WAKER};

/// A BitTorrent client on `mio`: one event-loop thread over every socket, plus disk
/// workers. Protocol rules live in the core's `Session`; this only moves bytes. Its
/// methods (`add_torrent`, `stats`, `events`, `shutdown`, …) are [`ClientCore`]'s, shared
/// with the smol driver.
#[derive(Debug)]
pub struct Client {
    core: ClientCore,
}

impl Client {
    /// Binds the listener (if any) and starts the event loop and disk threads.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        let poll = Poll::new().map_err(ClientError::Start)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(ClientError::Start)?);
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::bounded(EVENT_BACKLOG);
        let mut lp = EventLoop::new(poll, waker.clone(), &config, command_rx, event_tx)?;
        let local_addr = lp.local_addr();
        let dht_addr = lp.dht_addr();
        let thread = std::thread::Builder::new()
            .name("unchoke-mio".into())
            .spawn(move || lp.run())
            .map_err(ClientError::Start)?;
        let send = Box::new(move |c| {
            commands.send(c).map_err(|_| ClientError::Stopped)?;
            waker.wake().map_err(|_| ClientError::Stopped)
        });
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
