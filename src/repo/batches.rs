//! Cutting a list into batches bounded by count and by weight, for work that holds a whole
//! batch in memory at once: a walk's trees in flight, a prune's index objects.

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

#[cfg(test)]
mod tests {
    use super::by_weight;

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
