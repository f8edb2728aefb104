"""The instructor's solutions of the coding exercises of chapters 1-8 and 14, for the tests.

They are the same code as the ``solution`` cells of the instructor edition of the chapters (a test,
tests/test_coding_exercises.py, runs those cells against the checks as well); the package itself
holds no solution. Chapter 9's kernels are in tests/puzzle_solutions.py (it imports triton).
"""
import math

import torch

# chapter 1
def topm_read(query, keys, values, m, softmax=True):
    """The solution: score all N keys, keep the m largest, weight their value rows."""
    top, idx = (query @ keys.T).topk(m, dim=-1)                        # (B, m), (B, m)
    weights = top.softmax(-1) if softmax else top
    return (weights.unsqueeze(-1) * values[idx]).sum(1)                # (B, m, D_v) -> (B, D_v)


# chapter 2
def product_key_topm(row_scores, col_scores, m):
    """The solution: two small top-m's, then the top-m of the m × m candidate sums."""
    n_c = col_scores.shape[-1]
    top_row, row_idx = row_scores.topk(m, dim=-1)                      # (B, m)
    top_col, col_idx = col_scores.topk(m, dim=-1)                      # (B, m)
    candidates = (top_row[:, :, None] + top_col[:, None, :]).flatten(1)  # (B, m*m)
    scores, flat = candidates.topk(m, dim=-1)                          # (B, m)
    i = row_idx.gather(-1, flat // m)
    j = col_idx.gather(-1, flat % m)
    return scores, i * n_c + j


# chapter 3
def value_lr_multiplier(step, total_steps, k):
    """The solution: 1 + (k − 1)·max(0, 1 − step/T)."""
    return 1.0 + (k - 1.0) * max(0.0, 1.0 - step / total_steps)


# chapter 4
def skip_layer_forward(x, blocks, memories, wiring):
    """The solution: the loop of :meth:`ultramem_edu.model.LM.forward`, stripped to the wiring."""
    outputs = [None] * len(memories)
    for b, block in enumerate(blocks):
        x, h = block(x)                                                # (B, D), (B, D)
        for k, (i, _) in enumerate(wiring):
            if i == b:
                outputs[k] = memories[k](h)
        for k, (_, j) in enumerate(wiring):
            if j == b:
                x = x + outputs[k]
    return x


# chapter 5
def tucker_scores(row_scores, col_scores, core):
    """The solution: one batched matrix product."""
    return row_scores.transpose(-1, -2) @ core @ col_scores            # (B, n_r, r)(r, r)(B, r, n_c)


# chapter 5
def tdqkr_two_stage(row_scores, col_scores, core, m, u, t, both_signs=False):
    """The solution: rank-1 candidates per side, exact rescoring of their grid, top-m."""
    def candidates(proj):                                              # (B, n) -> (B, c) indices
        if not both_signs:
            return proj.topk(m, dim=-1).indices
        n = proj.shape[-1]
        order = proj.argsort(dim=-1, descending=True)
        return order if 2 * m >= n else torch.cat([order[..., :m], order[..., n - m:]], dim=-1)

    n_c = col_scores.shape[-1]
    r = core.shape[-1]
    rows = candidates((u[:, None] * row_scores).sum(-2))                        # (B, c_r)  by uᵀ S_row
    cols = candidates((t[:, None] * col_scores).sum(-2))                        # (B, c_c)  by tᵀ S_col
    sub_row = row_scores.gather(-1, rows[:, None, :].expand(-1, r, -1))         # (B, r, c_r)
    sub_col = col_scores.gather(-1, cols[:, None, :].expand(-1, r, -1))         # (B, r, c_c)
    grid = (sub_row.transpose(-1, -2) @ core @ sub_col).flatten(1)             # (B, c_r*c_c)  exact
    scores, flat = grid.topk(m, dim=-1)
    c_c = cols.shape[-1]
    return scores, rows.gather(-1, flat // c_c) * n_c + cols.gather(-1, flat % c_c)


# chapter 6
def ive_lookup(values, projectors, indices, scores):
    """The solution: scatter-add the weighted rows into (B, E, D_v), then one einsum."""
    n, d_v = values.shape
    e = projectors.shape[0]
    rows = values[indices % n] * scores.unsqueeze(-1)                  # (B, k, D_v)  weighted rows
    pooled = values.new_zeros(indices.shape[0], e, d_v)
    pooled.scatter_add_(1, (indices // n).unsqueeze(-1).expand(-1, -1, d_v), rows)   # (B, E, D_v)
    return torch.einsum("bed,edo->bo", pooled, projectors)             # (B, D_out)


# chapter 7
def mcs_pool(values, indices, core_scores, num_blocks=1):
    """The solution: weight each row slice by its core's score, then scatter-add per block."""
    n, d_v = values.shape
    b, k, h = core_scores.shape
    rows = values[indices % n].view(b, k, h, d_v // h)                 # (B, k, h, s)
    weighted = (rows * core_scores.unsqueeze(-1)).view(b, k, d_v)      # core c scales slice c
    out = values.new_zeros(b, num_blocks, d_v)
    return out.scatter_add_(1, (indices // n).unsqueeze(-1).expand(-1, -1, d_v), weighted)


# chapter 8
def topm_mean_monte_carlo(n, m, samples, generator):
    """The solution (the same computation as :func:`ultramem_edu.init.topm_mean_of_normals`)."""
    draws = torch.randn(samples, n, generator=generator, dtype=torch.float64)     # (samples, n)
    per_set = draws.topk(m, dim=-1).values.mean(-1)                               # (samples,)
    return float(per_set.mean()), float(per_set.std() / math.sqrt(samples))


# chapter 14
def tfidf_slot_ranking(batch_rows, background_rows, num_slots, t):
    """The solution: c by bincount, df by presence per background batch, tf·idf, top t of the read slots."""
    counts = torch.bincount(batch_rows, minlength=num_slots)
    df = torch.zeros(num_slots, dtype=torch.int64)
    for rows in background_rows:
        df += torch.bincount(rows, minlength=num_slots) > 0
    idf = torch.log((len(background_rows) + 1.0) / (df.double() + 1.0))
    scores = counts.double() / counts.sum() * idf
    read = torch.nonzero(counts > 0).flatten()                        # ascending slot index
    order = torch.sort(-scores[read], stable=True).indices            # ties keep the lower index first
    return scores, read[order[:t]]
