//! Looking back at one speaker's turns. The online tracker decides each turn once, against a
//! centroid that may have been seeded by audio where two voices were not told apart (quick turns
//! the segmentation model missed): such a centroid sits between the two voices, and each later
//! turn of either joins it. Compared with each other rather than with the centroid, the turns
//! of the two voices form two groups; this finds them.

use super::campplus::cosine;

/// Average-linkage agglomerative clustering of `embeddings` down to two groups: the two
/// groups (indices into `embeddings`) and their linkage, the mean similarity of every pair
/// across them. `None` for fewer than two embeddings.
pub fn two_groups(embeddings: &[&[f32]]) -> Option<([Vec<usize>; 2], f32)> {
    let n = embeddings.len();
    if n < 2 {
        return None;
    }
    // Symmetric: each pair computed once.
    let mut similarity = vec![vec![1.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let s = cosine(embeddings[i], embeddings[j]);
            (similarity[i][j], similarity[j][i]) = (s, s);
        }
    }
    let linkage = |a: &[usize], b: &[usize]| {
        let total: f32 = a.iter().flat_map(|&i| b.iter().map(move |&j| (i, j))).map(|(i, j)| similarity[i][j]).sum();
        total / (a.len() * b.len()) as f32
    };
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    while groups.len() > 2 {
        let (a, b) = closest_pair(&groups, &linkage);
        let absorbed = groups.swap_remove(b);
        groups[a].extend(absorbed);
    }
    let link = linkage(&groups[0], &groups[1]);
    let second = groups.pop()?;
    let first = groups.pop()?;
    Some(([first, second], link))
}

/// The two groups (`a < b`) most alike by `linkage`.
fn closest_pair(groups: &[Vec<usize>], linkage: &impl Fn(&[usize], &[usize]) -> f32) -> (usize, usize) {
    let pairs = (0..groups.len()).flat_map(|a| (a + 1..groups.len()).map(move |b| (a, b)));
    let scored = pairs.map(|(a, b)| ((a, b), linkage(&groups[a], &groups[b])));
    scored.max_by(|x, y| x.1.total_cmp(&y.1)).map(|(pair, _)| pair).unwrap_or((0, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn two_voices_fall_into_two_groups_whatever_their_order() {
        let voices = [[1.0, 0.1, 0.0], [0.1, 1.0, 0.0], [0.9, 0.2, 0.1], [0.2, 0.9, 0.1], [1.0, 0.0, 0.2]];
        let embeddings: Vec<Vec<f32>> = voices.iter().map(|v| unit(v)).collect();
        let refs: Vec<&[f32]> = embeddings.iter().map(Vec::as_slice).collect();
        let ([mut a, mut b], link) = two_groups(&refs).expect("two groups");
        a.sort_unstable();
        b.sort_unstable();
        let mut found = [a, b];
        found.sort();
        assert_eq!(found, [vec![0, 2, 4], vec![1, 3]]);
        assert!(link < 0.4, "{link}");
    }

    #[test]
    fn one_embedding_has_no_groups() {
        assert!(two_groups(&[&[1.0, 0.0]]).is_none());
    }
}
