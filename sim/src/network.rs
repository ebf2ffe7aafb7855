//! The virtual network: hosts with an upload and a download capacity, and one-way flows
//! (the two directions of every TCP connection) that share them.
//!
//! The model is fluid. A flow is *active* while it holds bytes that take bandwidth; each
//! active flow gets a rate, and its head unit finishes when its bytes have flowed at that
//! rate. Rates are shared fairly:
//! - a receiver's download capacity is split equally among the flows coming into it, which
//!   caps each of them;
//! - a sender's upload capacity is water-filled over its active flows: every flow gets the
//!   same share, except flows capped lower by their receiver, whose unused share goes to the
//!   others. So no upload capacity idles while a flow could take more.
//!
//! Rates change only when a flow starts or stops, and then only for the flows of the sender
//! and of the other senders into the same receiver; the rest of the network is untouched.
//! That keeps the cost of a change independent of the swarm's size.
//!
//! Small control messages (`have`, `request`, `choke`…) are not paced: on an idle flow they
//! arrive after the link latency alone, since their few bytes take no measurable time.
//! Behind queued blocks they wait their turn, as on a TCP stream. Every block is paced,
//! so every payload byte costs upload and download time: that is what makes the measured
//! distribution time a true upper bound of the theory's lower bound.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::due_heap::DueHeap;

/// Index of a host in the network.
pub(crate) type HostId = usize;
/// A flow: its slot in the flow table and the slot's epoch when it was opened. A closed
/// flow's slot is reused by a later flow with the next epoch, so a handle kept past its
/// flow's close (an end that has not heard of the close yet) names nothing: every call
/// with it is a no-op, never an action on the new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlowId {
    slot: u32,
    epoch: u32,
}

/// Index of a flow's record in the flow table (internal: open flows only).
type Slot = usize;

/// One send: the buffers of one action, delivered together.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) chunks: Chunks,
    /// Whether it takes bandwidth (blocks, and anything large).
    pub(crate) paced: bool,
    /// Payload (block data) bytes in it, for the accounting.
    pub(crate) payload: u64,
}

impl Unit {
    fn len(&self) -> usize {
        self.chunks.byte_len()
    }
}

/// The buffers of a unit, or of the units one arrival carries, in order. Nearly every
/// unit is one buffer (a session's coalesced messages) or two (a block's header and its
/// data): those are held inline, since a `Vec` here cost an allocation and a free for
/// every message sent. Only unpaced units riding behind a paced one make more.
#[derive(Debug)]
pub(crate) enum Chunks {
    /// One buffer.
    One(Bytes),
    /// Two buffers, in order.
    Two(Bytes, Bytes),
    /// Any number, in order.
    Many(Vec<Bytes>),
}

impl Chunks {
    /// Their bytes in all.
    pub(crate) fn byte_len(&self) -> usize {
        match self {
            Chunks::One(a) => a.len(),
            Chunks::Two(a, b) => a.len() + b.len(),
            Chunks::Many(v) => v.iter().map(Bytes::len).sum(),
        }
    }

    /// How many buffers.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        match self {
            Chunks::One(_) => 1,
            Chunks::Two(..) => 2,
            Chunks::Many(v) => v.len(),
        }
    }

    /// Appends `more`'s buffers behind these.
    fn append(&mut self, more: Chunks) {
        let mine = std::mem::replace(self, Chunks::Many(Vec::new()));
        let mut all = match mine {
            Chunks::Many(v) => v,
            inline => inline.into_iter().collect(),
        };
        all.extend(more);
        *self = Chunks::Many(all);
    }
}

impl IntoIterator for Chunks {
    type Item = Bytes;
    type IntoIter = std::iter::Chain<
        std::iter::Chain<std::option::IntoIter<Bytes>, std::option::IntoIter<Bytes>>,
        std::vec::IntoIter<Bytes>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let (a, b, rest) = match self {
            Chunks::One(a) => (Some(a), None, Vec::new()),
            Chunks::Two(a, b) => (Some(a), Some(b), Vec::new()),
            Chunks::Many(v) => (None, None, v),
        };
        a.into_iter().chain(b).chain(rest)
    }
}

/// Where a flow's bytes go: the receiving host, its incarnation and its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dest {
    pub(crate) host: HostId,
    pub(crate) incarnation: u32,
    pub(crate) conn: u64,
}

#[derive(Debug)]
struct Flow {
    from: HostId,
    to: HostId,
    dest: Dest,
    /// The sender's connection this flow carries the bytes of (for `handle_sent`).
    src_conn: u64,
    /// Bytes of the head unit already reported as accepted by the sender's socket.
    reported: u64,
    queue: VecDeque<Unit>,
    /// Bumped each time the slot is reused ([`FlowId`]).
    epoch: u32,
    /// Bytes of the head unit still to flow, as of `updated`.
    remaining: f64,
    /// Bytes per second while active.
    rate: f64,
    /// The most this flow may carry, bytes per second (infinite unless capped: a lossy
    /// path's TCP throughput, `crate::Loss`).
    cap: f64,
    /// Microseconds.
    updated: u64,
    active: bool,
    open: bool,
}

#[derive(Debug)]
struct HostLink {
    up: f64,
    down: f64,
    /// The most any one flow into this host may carry (bytes per second; infinite in the
    /// study): the lab's per-link bandwidth and slow readers (`crate::lab`).
    in_cap: f64,
    out_active: Vec<Slot>,
    in_active: Vec<Slot>,
    /// Microseconds spent with at least one active outgoing flow, up to `busy_since`.
    busy: u64,
    /// Since when the host has been uploading, while it is.
    busy_since: Option<u64>,
}

/// What finished flowing: the units to hand to the receiver after the link latency.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub(crate) from: HostId,
    /// The sender's connection.
    pub(crate) src_conn: u64,
    /// Bytes the sender's socket accepted with this arrival that were not reported
    /// before (by [`Network::progress`]).
    pub(crate) accepted: u64,
    pub(crate) dest: Dest,
    pub(crate) chunks: Chunks,
    pub(crate) payload: u64,
}

/// The hosts' capacities and every flow between them. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Network {
    hosts: Vec<HostLink>,
    /// Every flow record; a closed flow's slot goes on `free` and is reused, so the table
    /// grows with the most flows open at once, not with every connection ever made.
    flows: Vec<Flow>,
    free: Vec<Slot>,
    /// When each active flow's head unit finishes (one entry per scheduled flow).
    due: DueHeap,
    seq: u64,
    /// Scratch list of senders whose rates need recomputing.
    touched: Vec<HostId>,
    /// Scratch list of one sender's flows and their receive caps (`water_fill`).
    caps: Vec<(f64, Slot)>,
}

impl Network {
    /// Adds a host with these capacities (bytes per second).
    pub(crate) fn add_host(&mut self, up: f64, down: f64) -> HostId {
        self.hosts.push(HostLink {
            up,
            down,
            in_cap: f64::INFINITY,
            out_active: Vec::new(),
            in_active: Vec::new(),
            busy: 0,
            busy_since: None,
        });
        self.hosts.len() - 1
    }

    /// Opens a flow from `from`'s connection `src_conn` to `to`.
    pub(crate) fn open_flow(
        &mut self,
        from: HostId,
        src_conn: u64,
        to: HostId,
        dest: Dest,
    ) -> FlowId {
        let fresh = |epoch: u32| Flow {
            from,
            to,
            dest,
            src_conn,
            reported: 0,
            queue: VecDeque::new(),
            epoch,
            remaining: 0.0,
            rate: 0.0,
            cap: f64::INFINITY,
            updated: 0,
            active: false,
            open: true,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                let old = &self.flows[slot];
                self.flows[slot] = fresh(old.epoch.wrapping_add(1));
                slot
            }
            None => {
                self.flows.push(fresh(0));
                self.flows.len() - 1
            }
        };
        FlowId {
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            epoch: self.flows[slot].epoch,
        }
    }

    /// Caps what the flow may carry at `cap` bytes per second (before it carries anything).
    pub(crate) fn cap_flow(&mut self, id: FlowId, cap: f64) {
        if let Some(slot) = self.slot(id) {
            self.flows[slot].cap = cap;
        }
    }

    /// The slot of the open flow `id` names, if it is still open.
    fn slot(&self, id: FlowId) -> Option<Slot> {
        let slot = id.slot as usize;
        self.flows
            .get(slot)
            .is_some_and(|f| f.open && f.epoch == id.epoch)
            .then_some(slot)
    }

    /// Closes a flow: bytes still queued are lost (the connection is gone), and its slot
    /// is free for a later flow. Idempotent; a no-op for a handle of an older flow.
    pub(crate) fn close_flow(&mut self, id: FlowId, now: u64) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        if self.flows[slot].active {
            self.deactivate(slot, now);
        }
        let flow = &mut self.flows[slot];
        flow.open = false;
        // Free the queue's memory too: the record itself waits for reuse.
        flow.queue = VecDeque::new();
        flow.reported = 0;
        self.due.remove(slot);
        self.free.push(slot);
    }

    /// Queues `unit` on the flow. An unpaced unit on an idle flow is returned at once: it
    /// arrives after the latency alone. Anything else waits its turn.
    pub(crate) fn send(&mut self, id: FlowId, unit: Unit, now: u64) -> Option<Arrival> {
        let slot = self.slot(id)?;
        let flow = &mut self.flows[slot];
        if flow.queue.is_empty() && !unit.paced {
            return Some(Arrival {
                from: flow.from,
                src_conn: flow.src_conn,
                accepted: unit.len() as u64,
                dest: flow.dest,
                chunks: unit.chunks,
                payload: unit.payload,
            });
        }
        let starts = flow.queue.is_empty();
        if starts {
            flow.remaining = unit.len() as f64;
        }
        flow.queue.push_back(unit);
        if starts {
            self.activate(slot, now);
        }
        None
    }

    /// Changes a host's capacities (a stall sets both to zero); every flow it sends or
    /// receives is reshared at once.
    pub(crate) fn set_capacity(&mut self, host: HostId, up: f64, down: f64, now: u64) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        h.up = up;
        h.down = down;
        self.reshare(host, host, now);
    }

    /// Caps every flow into `host` at `cap` bytes per second (a per-link bandwidth, or a
    /// slow reader); flows already running are reshared at once.
    pub(crate) fn set_in_cap(&mut self, host: HostId, cap: f64, now: u64) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        h.in_cap = cap;
        self.reshare(host, host, now);
    }

    /// When the next unit finishes flowing, if any flow is active.
    pub(crate) fn next_due(&mut self) -> Option<u64> {
        self.due.peek().map(|(at, _)| at)
    }

    /// Finishes the unit due at `now` (the time [`Network::next_due`] gave), with any
    /// unpaced units queued right behind it.
    pub(crate) fn finish_due(&mut self, now: u64) -> Option<Arrival> {
        let (_, due) = self.due.pop()?;
        let flow = self.flows.get_mut(due)?;
        let head = flow.queue.pop_front()?;
        let accepted = (head.len() as u64).saturating_sub(flow.reported);
        flow.reported = 0;
        let mut arrival = Arrival {
            from: flow.from,
            src_conn: flow.src_conn,
            accepted,
            dest: flow.dest,
            chunks: head.chunks,
            payload: head.payload,
        };
        while flow.queue.front().is_some_and(|u| !u.paced) {
            if let Some(unit) = flow.queue.pop_front() {
                arrival.accepted += unit.len() as u64;
                arrival.chunks.append(unit.chunks);
                arrival.payload += unit.payload;
            }
        }
        flow.updated = now;
        match flow.queue.front() {
            Some(next) => {
                flow.remaining = next.len() as f64;
                self.schedule(due, now);
            }
            None => {
                flow.remaining = 0.0;
                self.deactivate(due, now);
            }
        }
        Some(arrival)
    }

    /// Bytes of the flow's head unit that have flowed since the last report (here or in
    /// [`Network::finish_due`]): what a kernel socket would have accepted meanwhile, so a
    /// slow link still shows progress between whole units. Whole bytes only; 0 for an idle,
    /// stalled or closed flow.
    #[cfg(test)]
    pub(crate) fn progress(&mut self, id: FlowId, now: u64) -> u64 {
        match self.slot(id) {
            Some(slot) => self.slot_progress(slot, now),
            None => 0,
        }
    }

    /// [`Network::progress`] of every flow `host` is sending on, as `(sender's
    /// connection, bytes)` pairs with bytes > 0, appended to `out` in connection order.
    /// Only the host's active flows are visited (an idle flow has nothing to report), not
    /// every connection it has: this runs before each of its timers.
    pub(crate) fn progress_from(&mut self, host: HostId, now: u64, out: &mut Vec<(u64, u64)>) {
        let start = out.len();
        let Some(h) = self.hosts.get(host) else {
            return;
        };
        for i in 0..h.out_active.len() {
            let slot = self.hosts[host].out_active[i];
            let bytes = self.slot_progress(slot, now);
            if bytes > 0 {
                out.push((self.flows[slot].src_conn, bytes));
            }
        }
        out[start..].sort_unstable();
    }

    fn slot_progress(&mut self, slot: Slot, now: u64) -> u64 {
        let flow = &mut self.flows[slot];
        let Some(head) = flow.queue.front() else {
            return 0;
        };
        if !flow.open || !flow.active {
            return 0;
        }
        let elapsed = now.saturating_sub(flow.updated) as f64 / 1e6;
        let remaining = (flow.remaining - flow.rate * elapsed).max(0.0);
        let len = head.len() as u64;
        // Never the whole unit: its last byte is reported when it finishes.
        let flowed = ((len as f64 - remaining).floor().max(0.0) as u64).min(len.saturating_sub(1));
        let new = flowed.saturating_sub(flow.reported);
        flow.reported = flow.reported.max(flowed);
        new
    }

    /// Payload bytes that have flowed, by `now`, of the units still on their links (each
    /// unit's flowed bytes counted in proportion to its payload). With the payload of the
    /// units already delivered this is the exact payload moved up to `now`, which never
    /// outruns the capacities: counting a block only when it arrives put the bytes it
    /// moved in an earlier interval into a later one. Does not change any state.
    pub(crate) fn payload_in_flight(&self, now: u64) -> f64 {
        self.flows
            .iter()
            .filter(|f| f.open && f.active)
            .filter_map(|f| {
                let head = f.queue.front()?;
                let len = head.len() as f64;
                if len <= 0.0 || head.payload == 0 {
                    return None;
                }
                let elapsed = now.saturating_sub(f.updated) as f64 / 1e6;
                let remaining = (f.remaining - f.rate * elapsed).clamp(0.0, len);
                Some((len - remaining) * head.payload as f64 / len)
            })
            .sum()
    }

    /// Microseconds `host` has spent uploading (with at least one active flow) up to `now`.
    pub(crate) fn busy_time(&self, host: HostId, now: u64) -> u64 {
        self.hosts.get(host).map_or(0, |h| {
            h.busy + h.busy_since.map_or(0, |since| now.saturating_sub(since))
        })
    }

    /// The current rate of a flow (bytes per second; 0 while idle).
    #[cfg(test)]
    pub(crate) fn rate(&self, id: FlowId) -> f64 {
        self.slot(id)
            .map(|slot| &self.flows[slot])
            .filter(|f| f.active)
            .map_or(0.0, |f| f.rate)
    }

    fn activate(&mut self, id: Slot, now: u64) {
        let (from, to) = {
            let flow = &mut self.flows[id];
            flow.active = true;
            flow.updated = now;
            flow.rate = 0.0;
            (flow.from, flow.to)
        };
        let sender = &mut self.hosts[from];
        sender.out_active.push(id);
        sender.busy_since.get_or_insert(now);
        self.hosts[to].in_active.push(id);
        self.reshare(from, to, now);
    }

    fn deactivate(&mut self, id: Slot, now: u64) {
        self.due.remove(id);
        let (from, to) = {
            let flow = &mut self.flows[id];
            flow.active = false;
            flow.rate = 0.0;
            (flow.from, flow.to)
        };
        let sender = &mut self.hosts[from];
        remove(&mut sender.out_active, id);
        if sender.out_active.is_empty() {
            if let Some(since) = sender.busy_since.take() {
                sender.busy += now.saturating_sub(since);
            }
        }
        remove(&mut self.hosts[to].in_active, id);
        self.reshare(from, to, now);
    }

    /// A flow from `from` to `to` started or stopped (or a capacity changed, `from == to`):
    /// `from`'s share changed, and so did the download cap of every flow into `to`, hence the
    /// shares of their senders.
    fn reshare(&mut self, from: HostId, to: HostId, now: u64) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        touched.push(from);
        for &f in &self.hosts[to].in_active {
            touched.push(self.flows[f].from);
        }
        touched.sort_unstable();
        touched.dedup();
        for &sender in &touched {
            self.water_fill(sender, now);
        }
        self.touched = touched;
    }

    /// Shares `sender`'s upload among its active flows (see the module docs).
    fn water_fill(&mut self, sender: HostId, now: u64) {
        let mut caps = std::mem::take(&mut self.caps);
        caps.clear();
        let host = &self.hosts[sender];
        caps.extend(host.out_active.iter().map(|&f| {
            let flow = &self.flows[f];
            let to = &self.hosts[flow.to];
            let cap = (to.down / to.in_active.len().max(1) as f64)
                .min(to.in_cap)
                .min(flow.cap);
            (cap, f)
        }));
        // Keys are unique (one per slot), so an unstable sort orders them as a stable one.
        caps.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut left = host.up;
        let mut count = caps.len();
        for &(cap, f) in &caps {
            let share = left / count as f64;
            let rate = cap.min(share);
            left -= rate;
            count -= 1;
            self.set_rate(f, rate, now);
        }
        self.caps = caps;
    }

    fn set_rate(&mut self, id: Slot, rate: f64, now: u64) {
        let flow = &mut self.flows[id];
        // Bytes already flowed at the old rate.
        let elapsed = now.saturating_sub(flow.updated) as f64 / 1e6;
        flow.remaining = (flow.remaining - flow.rate * elapsed).max(0.0);
        flow.updated = now;
        // An active flow with a positive rate always has a live completion scheduled; at an
        // unchanged rate that completion time still holds.
        if flow.rate == rate && rate > 0.0 && flow.active {
            return;
        }
        flow.rate = rate;
        self.schedule(id, now);
    }

    fn schedule(&mut self, id: Slot, now: u64) {
        let flow = &self.flows[id];
        if flow.rate <= 0.0 {
            self.due.remove(id);
            return;
        }
        // Rounded up: a unit never finishes before its bytes could have flowed.
        let micros = (flow.remaining / flow.rate * 1e6).ceil();
        let at = now.saturating_add(if micros.is_finite() {
            micros as u64
        } else {
            u64::MAX / 2
        });
        self.seq += 1;
        self.due.set(id, at, self.seq);
    }
}

fn remove(list: &mut Vec<Slot>, id: Slot) {
    if let Some(pos) = list.iter().position(|&f| f == id) {
        list.swap_remove(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(host: HostId) -> Dest {
        Dest {
            host,
            incarnation: 0,
            conn: 0,
        }
    }

    fn block(len: usize) -> Unit {
        Unit {
            chunks: Chunks::One(Bytes::from(vec![0u8; len])),
            paced: true,
            payload: len as u64,
        }
    }

    /// Runs the network until idle; returns (time, flow source) per arrival.
    fn drain(net: &mut Network) -> Vec<(u64, HostId)> {
        let mut out = Vec::new();
        while let Some(at) = net.next_due() {
            if let Some(a) = net.finish_due(at) {
                out.push((at, a.from));
            }
        }
        out
    }

    #[test]
    fn one_flow_runs_at_the_slower_end() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 0.0);
        let b = net.add_host(0.0, 500.0);
        let f = net.open_flow(a, 0, b, dest(b));
        assert!(net.send(f, block(1000), 0).is_none());
        assert_eq!(net.rate(f), 500.0);
        assert_eq!(drain(&mut net), vec![(2_000_000, a)]);
    }

    #[test]
    fn a_closed_flows_slot_is_reused_and_its_old_handle_names_nothing() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 1000.0);
        let b = net.add_host(1000.0, 1000.0);
        let old = net.open_flow(a, 0, b, dest(b));
        assert!(net.send(old, block(1000), 0).is_none());
        net.close_flow(old, 100_000);
        assert_eq!(
            net.next_due(),
            None,
            "a closed flow's completion is dropped"
        );
        let new = net.open_flow(a, 1, b, dest(b));
        assert_eq!(net.flows.len(), 1, "the slot was reused");
        assert_ne!(old, new);
        // The stale handle neither sends on, reports progress of, nor closes the new flow.
        assert!(net.send(old, block(1000), 200_000).is_none());
        assert_eq!(net.rate(new), 0.0);
        net.close_flow(old, 200_000);
        assert!(net.send(new, block(1000), 200_000).is_none());
        assert_eq!(net.progress(old, 300_000), 0);
        assert!(net.progress(new, 700_000) > 0);
        assert_eq!(drain(&mut net), vec![(1_200_000, a)]);
    }

    #[test]
    fn upload_is_shared_and_leftover_goes_to_uncapped_flows() {
        let mut net = Network::default();
        let s = net.add_host(900.0, 0.0);
        let slow = net.add_host(0.0, 100.0);
        let fast1 = net.add_host(0.0, 10_000.0);
        let fast2 = net.add_host(0.0, 10_000.0);
        let f0 = net.open_flow(s, 0, slow, dest(slow));
        let f1 = net.open_flow(s, 0, fast1, dest(fast1));
        let f2 = net.open_flow(s, 0, fast2, dest(fast2));
        net.send(f0, block(100_000), 0);
        net.send(f1, block(100_000), 0);
        net.send(f2, block(100_000), 0);
        assert_eq!(net.rate(f0), 100.0);
        assert_eq!(net.rate(f1), 400.0);
        assert_eq!(net.rate(f2), 400.0);
    }

    #[test]
    fn download_is_split_among_incoming_flows() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 0.0);
        let b = net.add_host(1000.0, 0.0);
        let r = net.add_host(0.0, 1000.0);
        let fa = net.open_flow(a, 0, r, dest(r));
        let fb = net.open_flow(b, 0, r, dest(r));
        net.send(fa, block(1000), 0);
        assert_eq!(net.rate(fa), 1000.0);
        net.send(fb, block(1000), 500_000);
        assert_eq!(net.rate(fa), 500.0);
        assert_eq!(net.rate(fb), 500.0);
        // a had 500 bytes left at 0.5 s, at 500 B/s: done at 1.5 s; then b alone at full
        // speed: it had 500 left at 1.5 s, done at 2.0 s.
        assert_eq!(drain(&mut net), vec![(1_500_000, a), (2_000_000, b)]);
    }

    #[test]
    fn unpaced_units_skip_an_idle_flow_but_wait_behind_blocks() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 1000.0);
        let b = net.add_host(1000.0, 1000.0);
        let f = net.open_flow(a, 0, b, dest(b));
        let small = || Unit {
            chunks: Chunks::One(Bytes::from_static(b"have")),
            paced: false,
            payload: 0,
        };
        assert!(net.send(f, small(), 0).is_some());
        assert!(net.send(f, block(1000), 0).is_none());
        assert!(net.send(f, small(), 0).is_none());
        let at = net.next_due();
        assert_eq!(at, Some(1_000_000));
        let arrival = net.finish_due(1_000_000).expect("arrival");
        assert_eq!(arrival.chunks.count(), 2, "the have rides behind the block");
        assert_eq!(net.next_due(), None);
    }

    #[test]
    fn a_stalled_host_moves_nothing_until_it_recovers() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 1000.0);
        let b = net.add_host(1000.0, 1000.0);
        let f = net.open_flow(a, 0, b, dest(b));
        net.send(f, block(1000), 0);
        net.set_capacity(b, 1000.0, 0.0, 500_000);
        assert_eq!(net.rate(f), 0.0);
        assert_eq!(net.next_due(), None, "nothing can finish while stalled");
        net.set_capacity(b, 1000.0, 1000.0, 2_000_000);
        // 500 bytes before the stall, 500 after it.
        assert_eq!(drain(&mut net), vec![(2_500_000, a)]);
    }

    #[test]
    fn progress_reports_partial_units_and_the_rest_on_arrival() {
        let mut net = Network::default();
        let a = net.add_host(1000.0, 1000.0);
        let b = net.add_host(1000.0, 1000.0);
        let f = net.open_flow(a, 7, b, dest(b));
        net.send(f, block(1000), 0);
        assert_eq!(net.progress(f, 250_000), 250);
        assert_eq!(net.progress(f, 500_000), 250, "only what is new");
        assert_eq!(net.progress(f, 500_000), 0);
        let arrival = net.finish_due(1_000_000).expect("arrival");
        assert_eq!((arrival.src_conn, arrival.accepted), (7, 500));
        assert_eq!(net.progress(f, 2_000_000), 0, "idle");
    }

    #[test]
    fn closing_a_flow_frees_its_share() {
        let mut net = Network::default();
        let s = net.add_host(1000.0, 0.0);
        let r1 = net.add_host(0.0, 1e9);
        let r2 = net.add_host(0.0, 1e9);
        let f1 = net.open_flow(s, 0, r1, dest(r1));
        let f2 = net.open_flow(s, 0, r2, dest(r2));
        net.send(f1, block(1000), 0);
        net.send(f2, block(1000), 0);
        assert_eq!(net.rate(f2), 500.0);
        net.close_flow(f1, 1_000_000);
        assert_eq!(net.rate(f2), 1000.0);
        // 500 bytes left at 1 s, then 0.5 s at 1000 B/s.
        assert_eq!(drain(&mut net), vec![(1_500_000, s)]);
    }
}
