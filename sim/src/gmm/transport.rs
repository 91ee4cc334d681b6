//! Exact discrete optimal transport between two small weight vectors (the coupling of mixture
//! components in MW2): the transportation simplex (Dantzig's MODI method). Start from the
//! north-west corner basis (K + K' - 1 cells, a spanning tree of the bipartite rows-columns
//! graph, zero flows kept as basic cells under degeneracy); price the non-basic cells with the
//! potentials u_i + v_j = C_ij of the basic ones; enter the most negative reduced cost, move flow
//! round the cycle it closes in the tree, and drop a blocking cell; stop when no reduced cost is
//! below -1e-12 of the largest cost (optimal to rounding).

/// The minimal cost sum_ij P_ij C_ij over couplings P of `a` and `b` (each summing to the same
/// total), with `cost` row-major (a.len() x b.len()). None if the simplex does not settle within
/// its iteration cap (not seen on mixtures; cycling under degeneracy is the only way).
pub fn min_cost(a: &[f64], b: &[f64], cost: &[f64]) -> Option<f64> {
    let (k, l) = (a.len(), b.len());
    assert!(k > 0 && l > 0 && cost.len() == k * l);
    let mut flow = vec![0.0; k * l];
    let mut basic = vec![false; k * l];
    // North-west corner: on a tie advance the row only, so the next cell enters with flow 0.
    let (mut ra, mut rb) = (a.to_vec(), b.to_vec());
    let (mut i, mut j) = (0, 0);
    loop {
        let f = ra[i].min(rb[j]).max(0.0);
        flow[i * l + j] = f;
        basic[i * l + j] = true;
        ra[i] -= f;
        rb[j] -= f;
        if i + 1 == k && j + 1 == l {
            break;
        }
        if j + 1 == l || (i + 1 < k && ra[i] <= rb[j]) {
            i += 1;
        } else {
            j += 1;
        }
    }
    let scale = cost
        .iter()
        .fold(0.0f64, |m, &c| m.max(c.abs()))
        .max(f64::MIN_POSITIVE);
    for _ in 0..50 * (k + l) * (k + l) {
        let (u, v) = potentials(&basic, cost, k, l);
        let mut entering = None;
        let mut best = -1e-12 * scale;
        for r in 0..k {
            for c in 0..l {
                let reduced = cost[r * l + c] - u[r] - v[c];
                if !basic[r * l + c] && reduced < best {
                    best = reduced;
                    entering = Some((r, c));
                }
            }
        }
        let Some((p, q)) = entering else {
            return Some(flow.iter().zip(cost).map(|(f, c)| f * c).sum());
        };
        // The tree path from column q to row p closes the cycle with (p, q): cells alternate
        // minus (odd positions) and plus.
        let path = tree_path(&basic, k, l, p, q)?;
        let theta = path
            .iter()
            .step_by(2)
            .map(|&(r, c)| flow[r * l + c])
            .fold(f64::INFINITY, f64::min);
        let leaving = *path
            .iter()
            .step_by(2)
            .find(|&&(r, c)| flow[r * l + c] == theta)?;
        for (n, &(r, c)) in path.iter().enumerate() {
            if n % 2 == 0 {
                flow[r * l + c] -= theta;
            } else {
                flow[r * l + c] += theta;
            }
        }
        flow[p * l + q] = theta;
        basic[p * l + q] = true;
        basic[leaving.0 * l + leaving.1] = false;
        flow[leaving.0 * l + leaving.1] = 0.0;
    }
    None
}

/// Potentials with u_0 = 0 and u_i + v_j = C_ij on every basic cell (the basis is a spanning
/// tree, so they are determined by a traversal from row 0).
fn potentials(basic: &[bool], cost: &[f64], k: usize, l: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut u, mut v) = (vec![f64::NAN; k], vec![f64::NAN; l]);
    u[0] = 0.0;
    let mut changed = true;
    while changed {
        changed = false;
        for r in 0..k {
            for c in 0..l {
                if !basic[r * l + c] {
                    continue;
                }
                if !u[r].is_nan() && v[c].is_nan() {
                    v[c] = cost[r * l + c] - u[r];
                    changed = true;
                } else if u[r].is_nan() && !v[c].is_nan() {
                    u[r] = cost[r * l + c] - v[c];
                    changed = true;
                }
            }
        }
    }
    (u, v)
}

/// The cells of the tree path from column node q to row node p (first cell in column q, last
/// in row p), by breadth-first search over basic cells. None if they are not connected (a
/// broken basis).
fn tree_path(
    basic: &[bool],
    k: usize,
    l: usize,
    p: usize,
    q: usize,
) -> Option<Vec<(usize, usize)>> {
    // Nodes: rows 0..k, columns k..k+l. Parent links from the start node (column q).
    let start = k + q;
    let mut parent = vec![usize::MAX; k + l];
    parent[start] = start;
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let neighbours: Vec<usize> = if node < k {
            (0..l)
                .filter(|&c| basic[node * l + c])
                .map(|c| k + c)
                .collect()
        } else {
            (0..k).filter(|&r| basic[r * l + (node - k)]).collect()
        };
        for next in neighbours {
            if parent[next] == usize::MAX {
                parent[next] = node;
                queue.push_back(next);
            }
        }
    }
    if parent[p] == usize::MAX {
        return None;
    }
    // Walk back from row p to column q; each step is one basic cell.
    let mut cells = Vec::new();
    let mut node = p;
    while node != start {
        let up = parent[node];
        let (r, c) = if node < k {
            (node, up - k)
        } else {
            (up, node - k)
        };
        cells.push((r, c));
        node = up;
    }
    // From column q's side: the cell next to (p, q) in column q carries minus.
    cells.reverse();
    Some(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every coupling of 3 x 3 weights on a grid of step 1/12 (all vertices of the transport
    /// polytope have such entries for these weights), brute-forced, against the simplex.
    #[test]
    fn matches_brute_force_on_small_problems() {
        let a = [3.0 / 12.0, 4.0 / 12.0, 5.0 / 12.0];
        let b = [6.0 / 12.0, 1.0 / 12.0, 5.0 / 12.0];
        for seed in 0..20u64 {
            // Deterministic pseudo-random costs.
            let cost: Vec<f64> = (0..9)
                .map(|i| ((seed * 31 + i * 17) % 23) as f64 / 7.0)
                .collect();
            let simplex = min_cost(&a, &b, &cost).unwrap();
            let units_a = [3, 4, 5];
            let units_b = [6, 1, 5];
            let mut best = f64::INFINITY;
            // P entries in twelfths: choose the first two columns of the first two rows.
            for p00 in 0..=12 {
                for p01 in 0..=12 {
                    for p10 in 0..=12 {
                        for p11 in 0..=12 {
                            let p02 = units_a[0] - p00 - p01;
                            let p12 = units_a[1] - p10 - p11;
                            let p20 = units_b[0] - p00 - p10;
                            let p21 = units_b[1] - p01 - p11;
                            let p22 = units_b[2] - p02 - p12;
                            let p = [p00, p01, p02, p10, p11, p12, p20, p21, p22];
                            if p.iter().any(|&x| x < 0) || p20 + p21 + p22 != units_a[2] {
                                continue;
                            }
                            let c: f64 =
                                p.iter().zip(&cost).map(|(&x, c)| x as f64 / 12.0 * c).sum();
                            best = best.min(c);
                        }
                    }
                }
            }
            assert!(
                (simplex - best).abs() <= 1e-12,
                "seed {seed}: {simplex} vs {best}"
            );
        }
        // One side with one atom: the only coupling.
        let one = min_cost(&[1.0], &[0.25, 0.75], &[2.0, 4.0]).unwrap();
        assert!((one - 3.5).abs() < 1e-15);
    }
}
