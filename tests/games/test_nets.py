"""PolicyValueNet, NetEvaluator and the safetensors checkpoints of treesearch.games.nets."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from treesearch import MCTS, Budget, Evaluator  # noqa: E402
from treesearch.games import Gomoku  # noqa: E402
from treesearch.games.nets import (  # noqa: E402
    CONFIG_KEY,
    NetEvaluator,
    PolicyValueNet,
    load_net,
    resolve_device,
    save_net,
)
from treesearch.testing.checks import check_evaluator  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny nets run fastest on one thread, and on a shared 2-core machine torch's spinning
    worker threads make each step 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Fill:
    """A minimal board state for the broken-state tests (subclasses override legal_actions):
    players alternately fill cells of a size x size board; the game ends when the board is
    full (a draw). Planes follow the Gomoku layout."""

    size: int
    cells: tuple[int, ...] = ()  # 0 empty, 1 player 0, 2 player 1, flat row-major
    last: int | None = None

    @classmethod
    def empty(cls, size: int) -> Fill:
        return cls(size, (0,) * (size * size))

    @property
    def to_play(self) -> int:
        return sum(c != 0 for c in self.cells) % 2

    @property
    def key(self) -> tuple[int, ...]:
        return self.cells

    def legal_actions(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.cells) if c == 0)

    def step(self, action: int) -> Fill:
        if self.cells[action] != 0:
            raise ValueError("occupied")
        cells = list(self.cells)
        cells[action] = self.to_play + 1
        return Fill(self.size, tuple(cells), action)

    def is_terminal(self) -> bool:
        return all(self.cells)

    def terminal_value(self) -> float | None:
        return 0.0 if self.is_terminal() else None

    def planes(self) -> np.ndarray:
        board = np.array(self.cells, dtype=np.int8).reshape(self.size, self.size)
        me = self.to_play + 1
        out = np.zeros((4, self.size, self.size), dtype=np.float32)
        out[0] = board == me
        out[1] = (board != 0) & (board != me)
        if self.last is not None:
            out[2].flat[self.last] = 1.0
        out[3] = 1.0 if self.to_play == 0 else 0.0
        return out


def small_net(size: int = 5, **kwargs: int) -> PolicyValueNet:
    config = {"blocks": 1, "channels": 8, "value_hidden": 8, **kwargs}
    return PolicyValueNet(size, **config)


def some_states(size: int = 5, count: int = 6, seed: int = 1) -> list[Gomoku]:
    """Non-terminal Gomoku (four in a row) positions after 0, 3, 6, ... random moves."""
    rng = np.random.default_rng(seed)
    states = []
    for i in range(count):
        state = Gomoku(size, 4)
        for _ in range(3 * i):
            following = state.step(int(rng.choice(state.legal_actions())))
            if following.is_terminal():
                break
            state = following
        states.append(state)
    return states


def set_head_outputs(net: PolicyValueNet, logits: np.ndarray, value: float) -> None:
    """Make the net output fixed logits and value for every input: zero the last layers'
    weights and put the wanted numbers in their biases."""
    with torch.no_grad():
        net.policy_fc.weight.zero_()
        net.policy_fc.bias.copy_(torch.as_tensor(logits, dtype=torch.float32))
        net.value_fc2.weight.zero_()
        net.value_fc2.bias.fill_(math.atanh(value))


# --------------------------------------------------------------------------- the network


def test_parameter_count_matches_hand_count():
    # size 3, 1 block, 2 channels, value hidden 4:
    # stem conv 4*2*9 = 72, BN 2+2; block: two convs 2*2*9 = 36 each, two BN 4 each;
    # policy conv 2*2 = 4, BN 4, fc 18*9 + 9 = 171; value conv 2*1 = 2, BN 2, fc1 9*4 + 4 = 40,
    # fc2 4 + 1 = 5.
    net = PolicyValueNet(3, blocks=1, channels=2, value_hidden=4)
    expected = 72 + 4 + 72 + 8 + 4 + 4 + 171 + 2 + 2 + 40 + 5
    assert sum(p.numel() for p in net.parameters()) == expected
    assert net.config == {"size": 3, "in_planes": 4, "blocks": 1, "channels": 2, "value_hidden": 4}


@pytest.mark.parametrize("blocks", [0, 2])
def test_forward_shapes_and_value_bounds(blocks):
    net = small_net(6, blocks=blocks).eval()
    x = torch.randn(7, 4, 6, 6, generator=torch.Generator().manual_seed(0)) * 1000
    logits, value = net(x)
    assert logits.shape == (7, 36)
    assert value.shape == (7,)
    assert torch.all(value.abs() <= 1.0)
    assert torch.isfinite(logits).all()


def test_initialisation_is_seeded_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a = small_net(generator=torch.Generator().manual_seed(3))
    b = small_net(generator=torch.Generator().manual_seed(3))
    c = small_net(generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), before)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.policy_fc.weight, c.policy_fc.weight)
    # Batch norm starts as the identity.
    assert torch.equal(a.stem[1].weight, torch.ones(8))
    assert torch.equal(a.stem[1].running_var, torch.ones(8))


def test_forward_rejects_bad_input():
    net = small_net(5)
    with pytest.raises(ValueError, match=r"\(B, 4, 5, 5\)"):
        net(torch.zeros(2, 4, 6, 6))
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(4, 5, 5))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        net(np.zeros((1, 4, 5, 5), dtype=np.float32))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"size": 0}, ValueError),
        ({"size": 5.0}, TypeError),
        ({"size": 5, "blocks": -1}, ValueError),
        ({"size": 5, "channels": 0}, ValueError),
        ({"size": 5, "channels": True}, TypeError),
        ({"size": 5, "in_planes": "4"}, TypeError),
        ({"size": 5, "generator": 3}, TypeError),
    ],
)
def test_constructor_validates(kwargs, error):
    size = kwargs.pop("size")
    with pytest.raises(error):
        PolicyValueNet(size, **kwargs)


# --------------------------------------------------------------------------- the evaluator


def test_evaluator_is_an_evaluator_and_passes_the_conformance_check():
    evaluator = NetEvaluator(small_net())
    assert isinstance(evaluator, Evaluator)
    check_evaluator(evaluator, some_states(), rng=np.random.default_rng(0))


def test_priors_are_the_softmax_of_the_legal_logits_only():
    net = small_net(3)
    # Illegal cells get huge logits; legal cells log 1, log 2, log 3, ...: the priors must be
    # 1:2:3:... over the legal cells whatever the illegal logits are.
    logits = np.full(9, 50.0)
    state = Gomoku.from_moves([4, 0, 8], size=3, k=3)  # cells 0, 4, 8 occupied
    legal = state.legal_actions()
    assert legal == (1, 2, 3, 5, 6, 7)
    for rank, cell in enumerate(legal, 1):
        logits[cell] = math.log(rank)
    set_head_outputs(net, logits, 0.5)
    (ev,) = NetEvaluator(net).evaluate([state], rng=RNG)
    np.testing.assert_allclose(ev.priors, np.arange(1, 7) / 21.0, rtol=1e-6)
    assert ev.priors.sum() == pytest.approx(1.0, abs=1e-12)
    assert ev.value == pytest.approx(0.5, abs=1e-6)


def test_priors_survive_extreme_logits():
    net = small_net(3)
    logits = np.array([1e4, -1e4, -1e4 + 1.0, 3e4, 0, 0, 0, 0, 0])
    set_head_outputs(net, logits, -0.25)
    # Cell 0 (logit 1e4) and cell 3 (3e4) occupied; the legal logits are -1e4, -1e4 + 1, 0...:
    # a naive softmax over all cells would give all legal moves 0.
    state = Gomoku.from_moves([0, 3], size=3, k=3)
    (ev,) = NetEvaluator(net).evaluate([state], rng=RNG)
    assert np.all(np.isfinite(ev.priors))
    assert ev.priors.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(ev.priors, [0, 0, 0.2, 0.2, 0.2, 0.2, 0.2], atol=1e-12)
    assert ev.value == pytest.approx(-0.25, abs=1e-6)


def test_priors_distribution_over_legal_moves_and_dense_illegal_zero():
    evaluator = NetEvaluator(small_net())
    states = some_states()
    for state, ev in zip(states, evaluator.evaluate(states, rng=RNG), strict=True):
        legal = state.legal_actions()
        assert ev.priors.shape == (len(legal),)
        assert np.all(ev.priors > 0)
        assert ev.priors.sum() == pytest.approx(1.0, abs=1e-9)
        assert -1.0 <= ev.value <= 1.0
        dense = np.zeros(25)
        dense[list(legal)] = ev.priors
        occupied = np.flatnonzero(state.board.ravel())
        assert np.all(dense[occupied] == 0.0)


def test_priors_match_a_reference_forward_pass():
    net = small_net().eval()
    states = some_states()
    evs = NetEvaluator(net).evaluate(states, rng=RNG)
    x = torch.from_numpy(np.stack([s.planes() for s in states]))
    with torch.no_grad():
        logits, values = net(x)
    for i, (state, ev) in enumerate(zip(states, evs, strict=True)):
        legal = list(state.legal_actions())
        expected = torch.softmax(logits[i, legal].double(), dim=0).numpy()
        np.testing.assert_allclose(ev.priors, expected, rtol=1e-6)
        assert ev.value == pytest.approx(float(values[i]), abs=1e-6)


def test_batch_equals_one_by_one_and_is_deterministic():
    evaluator = NetEvaluator(small_net())
    states = some_states(count=8)
    batch = evaluator.evaluate(states, rng=RNG)
    again = evaluator.evaluate(states, rng=np.random.default_rng(99))
    for state, ev, ev2 in zip(states, batch, again, strict=True):
        (single,) = evaluator.evaluate([state], rng=RNG)
        np.testing.assert_allclose(ev.priors, single.priors, rtol=1e-5, atol=1e-7)
        assert ev.value == pytest.approx(single.value, abs=1e-5)
        np.testing.assert_array_equal(ev.priors, ev2.priors)
        assert ev.value == ev2.value


def test_evaluate_uses_eval_mode_and_restores_train_mode():
    net = small_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    evaluator = NetEvaluator(net)
    states = some_states()
    first = evaluator.evaluate(states, rng=RNG)
    assert net.training
    # Batch norm running statistics are untouched (eval mode), so results repeat.
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    second = evaluator.evaluate(states[:1], rng=RNG)
    np.testing.assert_allclose(first[0].priors, second[0].priors, rtol=1e-5)


def test_counters():
    evaluator = NetEvaluator(small_net())
    assert (evaluator.calls, evaluator.positions, evaluator.seconds) == (0, 0, 0.0)
    evaluator.evaluate(some_states(count=4), rng=RNG)
    evaluator.evaluate(some_states(count=3), rng=RNG)
    assert evaluator.evaluate([], rng=RNG) == []
    assert evaluator.calls == 2
    assert evaluator.positions == 7
    assert evaluator.seconds > 0
    evaluator.reset_counters()
    assert (evaluator.calls, evaluator.positions, evaluator.seconds) == (0, 0, 0.0)


def test_evaluator_counts_one_call_per_search_round():
    evaluator = NetEvaluator(small_net())
    mcts = MCTS(evaluator, selection="puct", leaves_per_round=4, virtual_loss=1)
    result = mcts.search(Gomoku(5, 4), Budget(simulations=9), rng=np.random.default_rng(0))
    # Round 1 expands the root (1 leaf), rounds 2 and 3 gather 4 leaves each.
    assert evaluator.calls == 3
    assert evaluator.positions == 9
    assert result.action in Gomoku(5, 4).legal_actions()


def test_evaluator_rejects_bad_states():
    evaluator = NetEvaluator(small_net(5))
    with pytest.raises(ValueError, match="board size 5"):
        evaluator.evaluate([Gomoku(5, 4), Gomoku(6, 4)], rng=RNG)
    with pytest.raises(ValueError, match=r"\(4, 9, 9\)"):
        NetEvaluator(small_net(9)).evaluate([Gomoku(7)], rng=RNG)
    with pytest.raises(TypeError, match="planes"):
        evaluator.evaluate([object()], rng=RNG)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence"):
        evaluator.evaluate(Fill.empty(5), rng=RNG)  # type: ignore[arg-type]

    class Named(Fill):
        def legal_actions(self):
            return ("a1", "b2")

    class Outside(Fill):
        def legal_actions(self):
            return (3, 25)

    class Booleans(Fill):
        def legal_actions(self):
            return (True, False)

    with pytest.raises(TypeError, match="int actions"):
        evaluator.evaluate([Named.empty(5)], rng=RNG)
    with pytest.raises(TypeError, match="int actions"):
        evaluator.evaluate([Booleans.empty(5)], rng=RNG)
    with pytest.raises(ValueError, match=r"outside \[0, 25\)"):
        evaluator.evaluate([Outside.empty(5)], rng=RNG)
    assert evaluator.calls == 0


def test_evaluator_rejects_bad_nets_and_devices():
    with pytest.raises(TypeError, match="PolicyValueNet"):
        NetEvaluator(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device"):
        NetEvaluator(small_net(), device="tpu")
    with pytest.raises(TypeError, match="device"):
        resolve_device(0)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            NetEvaluator(small_net(), device="cuda")


# --------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path):
    net = small_net(5, blocks=2)
    # Non-trivial batch norm statistics, so the round trip must carry buffers too.
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 4, 5, 5, generator=torch.Generator().manual_seed(1)))
    net.eval()
    path = save_net(tmp_path / "net.safetensors", net, metadata={"game": "fill", "k": "5"})
    assert sorted(os.listdir(tmp_path)) == ["net.safetensors"]  # no temporary file left
    loaded = load_net(path)
    assert loaded.config == net.config
    assert not loaded.training
    assert loaded.metadata["game"] == "fill"
    assert loaded.metadata["k"] == "5"
    assert CONFIG_KEY in loaded.metadata
    x = torch.from_numpy(np.stack([s.planes() for s in some_states()]))
    with torch.no_grad():
        a_logits, a_value = net(x)
        b_logits, b_value = loaded(x)
    assert torch.equal(a_logits, b_logits)
    assert torch.equal(a_value, b_value)
    states = some_states()
    for ea, eb in zip(
        NetEvaluator(net).evaluate(states, rng=RNG),
        NetEvaluator(loaded).evaluate(states, rng=RNG),
        strict=True,
    ):
        np.testing.assert_array_equal(ea.priors, eb.priors)
        assert ea.value == eb.value
    # Overwriting replaces the file.
    other = small_net(5, blocks=0)
    save_net(path, other)
    assert load_net(path, expected_size=5).config["blocks"] == 0


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_net(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_net(garbage)
    good = save_net(tmp_path / "good.safetensors", small_net(5))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_net(truncated)
    with pytest.raises(ValueError, match="5x5 board, expected 7x7"):
        load_net(good, expected_size=7)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="not a PolicyValueNet checkpoint"):
        load_net(plain)
    mismatched = tmp_path / "mismatched.safetensors"
    tensors = {k: v.contiguous() for k, v in small_net(5, blocks=1).state_dict().items()}
    save_file(tensors, str(mismatched), metadata={CONFIG_KEY: '{"size": 5, "blocks": 2}'})
    with pytest.raises(ValueError, match="do not match"):
        load_net(mismatched)
    with pytest.raises(TypeError, match="path"):
        load_net(3)  # type: ignore[arg-type]


def test_save_errors(tmp_path):
    net = small_net()
    with pytest.raises(TypeError, match="str to str"):
        save_net(tmp_path / "a.safetensors", net, metadata={"size": 5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="reserved"):
        save_net(tmp_path / "a.safetensors", net, metadata={CONFIG_KEY: "x"})
    with pytest.raises(TypeError, match="PolicyValueNet"):
        save_net(tmp_path / "a.safetensors", torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- training


def test_a_training_step_reduces_the_loss_on_a_fixed_batch():
    net = small_net(5, blocks=1)
    states = some_states(count=8)
    x = torch.from_numpy(np.stack([s.planes() for s in states]))
    gen = torch.Generator().manual_seed(0)
    target_pi = torch.softmax(torch.randn(8, 25, generator=gen) * 3, dim=1)
    target_z = torch.tensor([1.0, -1.0, 0.0, 1.0, -1.0, 1.0, 0.0, -1.0])

    def loss_fn():
        logits, value = net(x)
        policy_loss = -(target_pi * torch.log_softmax(logits, dim=1)).sum(1).mean()
        return ((value - target_z) ** 2).mean() + policy_loss

    before = [p.detach().clone() for p in net.parameters()]
    optimiser = torch.optim.Adam(net.parameters(), lr=2e-2)
    net.train()
    with torch.no_grad():
        initial = float(loss_fn())
    for _ in range(15):
        optimiser.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = float(loss_fn())
    assert final < 0.7 * initial
    changed = [not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True)]
    assert all(changed)


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cuda_matches_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    net = small_net(5, blocks=2).eval()
    states = some_states(count=8)
    cpu = NetEvaluator(net, device="cpu").evaluate(states, rng=RNG)
    path = save_net(tmp_path / "n.safetensors", net)
    gpu_net = load_net(path, device="cuda")
    assert next(gpu_net.parameters()).is_cuda
    gpu = NetEvaluator(gpu_net, device="cuda").evaluate(states, rng=RNG)
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(a.priors, b.priors, rtol=1e-3, atol=1e-5)
        assert a.value == pytest.approx(b.value, abs=1e-4)


def test_folded_inference_equals_the_eval_net_and_follows_training() -> None:
    """The evaluator runs a copy with batch norm folded into the convolutions: same outputs as
    the net in eval mode, the net's own mode untouched, and never stale after an update."""
    torch.manual_seed(0)
    net = PolicyValueNet(5, blocks=2, channels=8, value_hidden=8)
    net.train()
    # Non-trivial running statistics, so folding has something to fold.
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(16, 4, 5, 5, generator=torch.Generator().manual_seed(1)) * 3)
    evaluator = NetEvaluator(net)
    states = [Gomoku(size=5, k=4), Gomoku.from_moves([12, 6, 7], size=5, k=4)]
    rng = np.random.default_rng(0)

    def reference() -> list[tuple[np.ndarray, float]]:
        was = net.training
        net.eval()
        with torch.no_grad():
            logits, values = net(torch.from_numpy(np.stack([s.planes() for s in states])))
        net.train(was)
        out = []
        for row, state, value in zip(logits.double().numpy(), states, values, strict=True):
            legal = row[list(state.legal_actions())]
            p = np.exp(legal - legal.max())
            out.append((p / p.sum(), float(value)))
        return out

    for got, (priors, value) in zip(evaluator.evaluate(states, rng=rng), reference(), strict=True):
        np.testing.assert_allclose(got.priors, priors, atol=1e-5)
        assert got.value == pytest.approx(value, abs=1e-5)
    assert net.training  # evaluating did not switch the training net to eval mode
    before = evaluator.evaluate(states, rng=rng)[1].value
    optimiser = torch.optim.SGD(net.parameters(), lr=0.5)
    logits, values = net(torch.from_numpy(np.stack([s.planes() for s in states])))
    (values.sum() + logits.sum()).backward()
    optimiser.step()
    after = evaluator.evaluate(states, rng=rng)
    assert after[1].value != pytest.approx(before, abs=1e-6)
    for got, (priors, value) in zip(after, reference(), strict=True):
        np.testing.assert_allclose(got.priors, priors, atol=1e-5)
        assert got.value == pytest.approx(value, abs=1e-5)
    # Writes through .data bypass torch's version counters: refresh() picks them up.
    with torch.no_grad():
        for param in net.parameters():
            param.data.mul_(0.5)
    evaluator.refresh()
    for got, (priors, value) in zip(evaluator.evaluate(states, rng=rng), reference(), strict=True):
        np.testing.assert_allclose(got.priors, priors, atol=1e-5)
        assert got.value == pytest.approx(value, abs=1e-5)
