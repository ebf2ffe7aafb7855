//! The queue order: `queue-move-top`, `-up`, `-down` and `-bottom`, as Transmission has
//! them. The new order is worked out here from the positions the engine shows; the engine
//! is then told each torrent's new place ([`crate::Engine::set_queue_position`]).

use serde_json::{Value, json};

use crate::{Engine, select};

/// Where `queue-move-*` moves the torrents it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    /// Before every other, keeping their order.
    Top,
    /// One place up, unless the one before moves too.
    Up,
    /// One place down, unless the one after moves too.
    Down,
    /// After every other, keeping their order.
    Bottom,
}

/// `queue-move-*`.
pub(crate) fn queue_move(
    engine: &mut dyn Engine,
    args: &Value,
    how: Move,
) -> Result<Value, String> {
    let torrents = engine.torrents(&[])?;
    let chosen = select(args, &torrents)?;
    let mut order: Vec<(u64, u64)> = torrents.iter().map(|t| (t.queue_position, t.id)).collect();
    order.sort_unstable();
    let now: Vec<u64> = order.into_iter().map(|(_, id)| id).collect();
    let wanted = moved(&now, &chosen, how);
    reorder(engine, now, &wanted)?;
    Ok(json!({}))
}

/// `order` with the torrents in `chosen` moved as `how` says.
pub(crate) fn moved(order: &[u64], chosen: &[u64], how: Move) -> Vec<u64> {
    let is_chosen = |id: &u64| chosen.contains(id);
    match how {
        Move::Top => order
            .iter()
            .filter(|id| is_chosen(id))
            .chain(order.iter().filter(|id| !is_chosen(id)))
            .copied()
            .collect(),
        Move::Bottom => order
            .iter()
            .filter(|id| !is_chosen(id))
            .chain(order.iter().filter(|id| is_chosen(id)))
            .copied()
            .collect(),
        Move::Up => {
            let mut v = order.to_vec();
            for i in 1..v.len() {
                if is_chosen(&v[i]) && !is_chosen(&v[i - 1]) {
                    v.swap(i, i - 1);
                }
            }
            v
        }
        Move::Down => {
            let mut v = order.to_vec();
            for i in (0..v.len().saturating_sub(1)).rev() {
                if is_chosen(&v[i]) && !is_chosen(&v[i + 1]) {
                    v.swap(i, i + 1);
                }
            }
            v
        }
    }
}

/// Tells the engine the places that change for `now` to become `wanted`, first place
/// first: moving a torrent to place `k` once places `0..k` are right leaves them right.
pub(crate) fn reorder(
    engine: &mut dyn Engine,
    mut now: Vec<u64>,
    wanted: &[u64],
) -> Result<(), String> {
    for (k, &id) in wanted.iter().enumerate() {
        if now.get(k) == Some(&id) {
            continue;
        }
        engine.set_queue_position(id, k as u64)?;
        now.retain(|&x| x != id);
        now.insert(k.min(now.len()), id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_keep_the_chosen_torrents_in_their_order() {
        let order = [1, 2, 3, 4, 5];
        assert_eq!(moved(&order, &[4, 2], Move::Top), vec![2, 4, 1, 3, 5]);
        assert_eq!(moved(&order, &[4, 2], Move::Bottom), vec![1, 3, 5, 2, 4]);
        assert_eq!(moved(&order, &[1, 4], Move::Up), vec![1, 2, 4, 3, 5]);
        assert_eq!(moved(&order, &[1, 2], Move::Up), vec![1, 2, 3, 4, 5]);
        assert_eq!(moved(&order, &[5, 2], Move::Down), vec![1, 3, 2, 4, 5]);
        assert_eq!(moved(&order, &[4, 5], Move::Down), vec![1, 2, 3, 4, 5]);
        assert_eq!(moved(&order, &[], Move::Top), order.to_vec());
    }
}
