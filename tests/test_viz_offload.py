"""The host-offload figures draw what ultramem_edu.offload computes, and validate their inputs."""
import numpy as np
import pytest

from ultramem_edu.cost import ULTRAMEM_LAYER
from ultramem_edu.offload import EngramSpec, HostLink, host_offload_comparison
from ultramem_edu.viz.offload import offload_cost_figure, prefetch_timeline_figure

ENGRAM = EngramSpec(d_model=768, table_rows_per_head=244_834)
LINK = HostLink()


def _step(batch=64, block=5e-6, before=1, between=3):
    return host_offload_comparison(ENGRAM, ULTRAMEM_LAYER, batch, LINK, block, before, between)


def test_timeline_puts_each_copy_where_it_can_start_and_the_wait_before_the_block_that_needs_it():
    step = _step()
    fig = prefetch_timeline_figure(step, 20, 5e-6, 1, (2, 5), "t")
    copies = {t.name.split(":")[0]: t for t in fig.data if t.name.endswith("host copy")}
    assert copies["Engram"].base[0] == 0.0                                   # starts with the step
    assert copies["UltraMem"].base[0] == pytest.approx(3 * 5.0)              # after block 2 ends (µs)
    assert copies["UltraMem"].x[0] == pytest.approx(step["ultramem_fetch_s"] * 1e6)
    blocks = [t for t in fig.data if t.name == "blocks (compute)"]
    engram_starts, ultramem_starts = (np.asarray(t.base) for t in blocks)
    assert engram_starts[1] == pytest.approx(step["engram_fetch_s"] * 1e6)   # block 1 waits for its rows
    wait = ultramem_starts[6] - (ultramem_starts[5] + 5.0)
    assert wait == pytest.approx(step["ultramem_exposed_s"] * 1e6)           # block 6 waits for UltraMem's
    assert np.allclose(np.diff(ultramem_starts[:6]), 5.0)
    waits = [t for t in fig.data if "wait" in t.name]
    assert len(waits) == 2


def test_timeline_without_a_wait_draws_none():
    step = _step(batch=1, block=1e-3)
    fig = prefetch_timeline_figure(step, 20, 1e-3, 1, (2, 5), "t")
    assert not any("wait" in t.name for t in fig.data)


def test_cost_figure_draws_copy_and_overlap_per_design():
    b = 2 ** np.arange(0, 6)
    cmp = host_offload_comparison(ENGRAM, ULTRAMEM_LAYER, b, LINK, np.full(b.shape, 5e-6), 1, 3)
    fig = offload_cost_figure(b, cmp, "t")
    by_name = {t.name: t for t in fig.data}
    assert np.allclose(by_name["UltraMem: copy"].y, cmp["ultramem_fetch_s"] * 1e6)
    assert np.allclose(by_name["Engram: compute to hide it behind"].y, cmp["engram_overlap_s"] * 1e6)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_figures_validate_their_inputs():
    step = _step()
    with pytest.raises(TypeError, match="comparison"):
        prefetch_timeline_figure([1], 20, 5e-6, 1, (2, 5), "t")
    with pytest.raises(ValueError, match="engram_fetch_s"):
        prefetch_timeline_figure({"ultramem_bytes": 1}, 20, 5e-6, 1, (2, 5), "t")
    with pytest.raises(ValueError, match="ultramem_wiring"):
        prefetch_timeline_figure(step, 20, 5e-6, 1, (5, 2), "t")
    with pytest.raises(ValueError, match="same block_seconds"):
        prefetch_timeline_figure(step, 20, 7e-6, 1, (2, 5), "t")
    with pytest.raises(ValueError, match="engram_block"):
        prefetch_timeline_figure(step, 20, 5e-6, 20, (2, 5), "t")
    with pytest.raises(ValueError, match="scalars"):
        prefetch_timeline_figure(_step(batch=np.array([1, 2])), 20, 5e-6, 1, (2, 5), "t")
    with pytest.raises(ValueError, match="batch_sizes"):
        offload_cost_figure(np.array([4, 2]), _step(batch=np.array([4, 2])), "t")
    with pytest.raises(ValueError, match="one value per batch size"):
        offload_cost_figure(np.array([1, 2]), step, "t")
