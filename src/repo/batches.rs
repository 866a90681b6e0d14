//! Cutting a list into batches bounded by count and by weight, for work that holds a whole
//! batch in memory at once: a walk's trees in flight, a prune's index objects; and merging
//! nearby byte ranges of one pack into one read.

use std::ops::Range;

use crate::crypto::BlobId;

/// `items` in order, cut into runs of at most `max_items` whose weights sum to at most
/// `max_weight`; an item heavier than that alone is a run of its own.
pub fn by_weight<T>(
    items: &[T],
    max_items: usize,
    max_weight: u64,
    weight: impl Fn(&T) -> u64,
) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut sum) = (0, 0u64);
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if i > start && (i - start >= max_items || sum.saturating_add(w) > max_weight) {
            out.push(&items[start..i]);
            (start, sum) = (i, 0);
        }
        sum = sum.saturating_add(w);
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// How much a span may read that none of its blobs needs (`spans`).
#[derive(Clone, Copy)]
pub enum Waste {
    /// Any gaps up to `gap` (few blobs per batch: a walk's trees).
    Gaps,
    /// No more bytes between its blobs than in them: a batch reads at most twice its blobs'
    /// bytes however sparse they lie (hundreds of blobs per batch: delta candidates).
    AtMostUsed,
}

/// Blobs' places (pack, byte range) merged into spans to read with one request each: blobs
/// of one pack whose ranges lie within `gap` bytes of each other share a span, as `waste`
/// allows. Returns (pack, span, the indices into `places` it holds), packs and offsets in
/// order. Over S3 a request is a round trip (tens of milliseconds on Garage for a small
/// response), so many small blobs of one pack cost far more as one request each than as
/// one read of their span.
pub fn spans(
    places: &[(BlobId, Range<u64>)],
    gap: u64,
    waste: Waste,
) -> Vec<(BlobId, Range<u64>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..places.len()).collect();
    order.sort_by_key(|&i| (places[i].0, places[i].1.start));
    // (pack, span, members, bytes of the members)
    let mut out: Vec<(BlobId, Range<u64>, Vec<usize>, u64)> = Vec::new();
    for i in order {
        let (pack, r) = &places[i];
        let len = r.end.saturating_sub(r.start);
        let joins = out.last().is_some_and(|(p, span, _, used)| {
            let end = span.end.max(r.end);
            let wasted = (end - span.start).saturating_sub(used + len);
            p == pack
                && r.start <= span.end.saturating_add(gap)
                && match waste {
                    Waste::Gaps => true,
                    Waste::AtMostUsed => wasted <= used + len,
                }
        });
        match out.last_mut() {
            Some((_, span, members, used)) if joins => {
                span.end = span.end.max(r.end);
                members.push(i);
                *used += len;
            }
            _ => out.push((*pack, r.clone(), vec![i], len)),
        }
    }
    out.into_iter().map(|(p, r, m, _)| (p, r, m)).collect()
}

#[cfg(test)]
mod tests {
    use super::{by_weight, spans, Waste};
    use crate::crypto::BlobId;

    #[test]
    fn nearby_ranges_of_one_pack_share_a_span() {
        let (a, b) = (BlobId([1; 32]), BlobId([2; 32]));
        // (places, gap, spans wanted as (pack, range, members))
        type Case = (
            Vec<(BlobId, std::ops::Range<u64>)>,
            u64,
            Vec<(BlobId, std::ops::Range<u64>, Vec<usize>)>,
        );
        let cases: Vec<Case> = vec![
            (vec![], 10, vec![]),
            // Adjacent, then a gap of exactly `gap`, then one past it.
            (
                vec![(a, 0..10), (a, 10..20), (a, 30..40), (a, 51..60)],
                10,
                vec![(a, 0..40, vec![0, 1, 2]), (a, 51..60, vec![3])],
            ),
            // Out of order, two packs, a range inside another's span.
            (
                vec![
                    (b, 5..9),
                    (a, 100..200),
                    (b, 0..10),
                    (a, 0..50),
                    (a, 20..30),
                ],
                0,
                vec![
                    (a, 0..50, vec![3, 4]),
                    (a, 100..200, vec![1]),
                    (b, 0..10, vec![2, 0]),
                ],
            ),
            // No merging across packs, however close.
            (
                vec![(a, 0..10), (b, 10..20)],
                100,
                vec![(a, 0..10, vec![0]), (b, 10..20, vec![1])],
            ),
        ];
        for (places, gap, want) in cases {
            assert_eq!(
                spans(&places, gap, Waste::Gaps),
                want,
                "{places:?} gap {gap}"
            );
        }
        // At most as many bytes between a span's blobs as in them: 10-byte blobs 10 apart
        // share spans, 10-byte blobs 30 apart never do; a gap is allowed once the span
        // holds enough (20 bytes, then 20 between).
        let cases: Vec<Case> = vec![
            (
                vec![(a, 0..10), (a, 20..30), (a, 40..50)],
                100,
                vec![(a, 0..50, vec![0, 1, 2])],
            ),
            (
                vec![(a, 0..10), (a, 40..50), (a, 80..90)],
                100,
                vec![
                    (a, 0..10, vec![0]),
                    (a, 40..50, vec![1]),
                    (a, 80..90, vec![2]),
                ],
            ),
            (
                vec![(a, 0..10), (a, 10..20), (a, 40..60), (a, 100..101)],
                100,
                vec![(a, 0..60, vec![0, 1, 2]), (a, 100..101, vec![3])],
            ),
        ];
        for (places, gap, want) in cases {
            assert_eq!(spans(&places, gap, Waste::AtMostUsed), want, "{places:?}");
        }
    }

    #[test]
    fn runs_hold_at_most_max_items_and_max_weight_unless_one_item_is_heavier() {
        // (weights, max items, max weight, run lengths wanted)
        let cases: [(&[u64], usize, u64, &[usize]); 8] = [
            (&[], 4, 10, &[]),
            (&[1; 9], 4, 100, &[4, 4, 1]),
            (&[3; 9], 100, 10, &[3, 3, 3]),
            (&[5, 5, 1], 100, 10, &[2, 1]),
            (&[20, 1, 1], 100, 10, &[1, 2]),
            (&[1, 20, 1], 100, 10, &[1, 1, 1]),
            (&[0; 5], 2, 0, &[2, 2, 1]),
            (&[u64::MAX, 1], 100, u64::MAX - 1, &[1, 1]),
        ];
        for (weights, max_items, max_weight, want) in cases {
            let got: Vec<usize> = by_weight(weights, max_items, max_weight, |w| *w)
                .iter()
                .map(|r| r.len())
                .collect();
            assert_eq!(got, want, "{weights:?} {max_items} {max_weight}");
        }
    }
}
