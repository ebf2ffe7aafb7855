//! 16-bit sequence-number arithmetic with wrap-around.
//!
//! uTP numbers packets (and acknowledges them) with `u16`s that wrap from 65535 to 0. Two
//! numbers are compared in the half-space sense (as TCP does with RFC 1982 serial numbers):
//! `a` is before `b` when `b` is less than 32768 steps ahead of `a`. A connection never has
//! more than [`MAX_WINDOW_PACKETS`] packets outstanding in either direction, far below that
//! half space, so every comparison it makes is unambiguous.

/// The most packets a connection keeps outstanding (unacknowledged, sent) or holds out of
/// order (received): a small fraction of the 32768-number half space, so comparisons of any
/// two numbers a connection handles stay unambiguous across the wrap.
pub const MAX_WINDOW_PACKETS: usize = 2048;

/// `true` when `a` comes strictly before `b`, across the wrap (65535 is before 0).
pub fn seq_less(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

/// `true` when `a` comes before `b` or equals it.
pub fn seq_less_eq(a: u16, b: u16) -> bool {
    a == b || seq_less(a, b)
}

/// How many steps forward from `from` to `to` (65535 → 1 is 2 steps).
pub fn seq_distance(from: u16, to: u16) -> u16 {
    to.wrapping_sub(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_the_wrap() {
        assert!(seq_less(1, 2));
        assert!(!seq_less(2, 1));
        assert!(!seq_less(7, 7));
        assert!(seq_less_eq(7, 7));
        assert!(seq_less(65535, 0));
        assert!(seq_less(65530, 4));
        assert!(!seq_less(4, 65530));
        assert!(seq_less(0x7000, 0xE000));
        // Exactly half way apart: neither is before the other in the strict sense on one
        // side, which is fine since a connection never spans that far.
        assert!(!seq_less(0x8000, 0));
    }

    #[test]
    fn distance_wraps() {
        assert_eq!(seq_distance(65535, 0), 1);
        assert_eq!(seq_distance(65535, 1), 2);
        assert_eq!(seq_distance(65000, 100), 636);
        assert_eq!(seq_distance(5, 5), 0);
        assert_eq!(seq_distance(6, 5), 65535);
    }

    #[test]
    fn a_run_of_numbers_through_the_wrap_stays_ordered() {
        let start: u16 = 65500;
        for i in 0..100u16 {
            let a = start.wrapping_add(i);
            let b = a.wrapping_add(1);
            assert!(seq_less(a, b), "{a} < {b}");
            assert_eq!(seq_distance(start, b), i + 1);
        }
    }
}
