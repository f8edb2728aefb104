import pytest

from ultramem_edu.exercises import ch04
from ultramem_edu.model import default_wiring

import exercise_solutions as solutions


def test_checkers_accept_the_right_answers(capsys):
    ch04.check_wiring(default_wiring(12, 3))
    ch04.check_wiring([(0, 2), (4, 7), (8, 11)])
    ch04.check_step_time(20 + 4 * (5.0 - 3.6), 20 + 4 * 5.0)
    ch04.check_split_keys(1024, 4 * 2 * 1024, 2 * 2048)
    assert capsys.readouterr().out.count("Correct") == 4


@pytest.mark.parametrize(
    "wiring,hint",
    [("1:3", "tuple"), (((1, 3), (4, 6)), "3 pairs"), (((1, 3), (4, 6), (8, 12)), "0-based"),
     (((1, 3), (6, 4), (8, 10)), "i > j"), (((1, 1), (4, 6), (8, 10)), "at least 2"),
     (((1, 3), (5, 6), (8, 10)), "at least 2"), (((0, 4), (3, 6), (8, 10)), "overlap"),
     (((1, 3), (3, 6), (8, 10)), "overlap"), (((1, 3.0), (4, 6), (7, 9)), "integers"), (((1,), (4, 6), (7, 9)), "pair")],
)
def test_wiring_rejects_wrong_answers(wiring, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_wiring(wiring)


@pytest.mark.parametrize(
    "overlapped,serial,hint",
    [(25.6, 20.0, "Serial"), (20.0, 40.0, "stalls"), (28.0, 40.0, "FFN"), (24.0, 40.0, "Not quite")],
)
def test_step_time_rejects_wrong_answers(overlapped, serial, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_step_time(overlapped, serial)


@pytest.mark.parametrize(
    "per_side,small,big,hint",
    [(512, 4096, 4096, "IVE"), (2048, 8192, 4096, "Not quite"),
     (1024, 8192, 2048, "both sides"), (1024, 8192, 5000, "Not quite"), (1024, 2048, 4096, "one small"),
     (1024, 4096, 4096, "Not quite")],
)
def test_split_keys_rejects_wrong_answers(per_side, small, big, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_split_keys(per_side, small, big)



# --- coding exercise: skip_layer_forward ------------------------------------------------------


def _forward(reads="h", write_at="j", base=0):
    def skip_layer_forward(x, blocks, memories, wiring):
        outputs = [None] * len(memories)
        for b, block in enumerate(blocks):
            x_in = x
            x, h = block(x)
            for k, (i, j) in enumerate(wiring):
                if i - base == b:
                    outputs[k] = memories[k]({"h": h, "x": x, "x_in": x_in}[reads])
                if write_at == "i" and i - base == b:
                    x = x + outputs[k]
            for k, (i, j) in enumerate(wiring):
                target = {"j": j, "j+1": j + 1, "i": None}[write_at]
                if target is not None and target - base == b and outputs[k] is not None:
                    x = x + outputs[k]
        return x
    return skip_layer_forward


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (_forward(reads="x"), "not the residual stream"),
        (_forward(reads="x_in"), "not the block's input"),
        (_forward(write_at="i"), "not right after block i"),
        (_forward(write_at="j+1"), "not after block j \\+ 1"),
        (_forward(base=1), "0-based"),
        (lambda x, blocks, memories, wiring: blocks[-1](x)[0], "differs"),
        (lambda x, blocks, memories, wiring: _forward()(x, blocks, memories, wiring)[None], "wrong shape"),
    ],
)
def test_skip_layer_forward_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_skip_layer_forward(wrong)


def test_skip_layer_forward_passes_the_solution(capsys):
    ch04.check_skip_layer_forward(solutions.skip_layer_forward)
    ch04.check_skip_layer_forward(_forward())
    assert capsys.readouterr().out.count("Correct") == 2


def test_skip_layer_solution_is_the_models_loop():
    """The exercise's forward, fed the LM's own blocks and memories, reproduces TransformerLM's stream."""
    from types import SimpleNamespace

    import torch

    from ultramem_edu.model import LMConfig, TransformerLM
    from ultramem_edu.types import MemoryOutput

    class LinearMemory(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.proj = torch.nn.Linear(d, d)

        def forward(self, h):
            zero = h.new_zeros(())
            return MemoryOutput(output=torch.sin(self.proj(h)), indices=None, scores=None, aux_loss=zero)

    torch.manual_seed(0)
    config = LMConfig(vocab_size=32, seq_len=8, d_model=16, n_layers=5, n_heads=2, ffn_hidden=32,
                      memory=SimpleNamespace(d_model=16), memory_wiring=((1, 3), (2, 2), (1, 4)))
    model = TransformerLM(config, memory_factory=lambda _: LinearMemory(16)).eval()
    idx = torch.randint(0, 32, (2, 8))
    captured = {}
    model.ln_f.register_forward_hook(lambda module, args, out: captured.update(stream=args[0]))
    with torch.no_grad():
        model(idx)
        x = model.tok_emb(idx) + model.pos_emb(torch.arange(8))
        blocks = [lambda z, blk=blk: blk(z)[:2] for blk in model.blocks]
        memories = [lambda h, mem=mem: mem(h).output for mem in model.memories]
        mine = solutions.skip_layer_forward(x, blocks, memories, config.memory_wiring)
    torch.testing.assert_close(mine, captured["stream"])
