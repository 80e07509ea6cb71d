"""Tests for treesearch.train.alphazero: config, replay buffer, loss, checkpoints, training runs,
resume after SIGKILL."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np
import pytest

from treesearch.train.alphazero import (
    AlphaZeroConfig,
    ReplayBuffer,
    alphazero_loss,
    load_checkpoint,
    saved_config,
    train,
)

torch = pytest.importorskip("torch")
gomoku = pytest.importorskip("treesearch.games.gomoku")
nets = pytest.importorskip("treesearch.games.nets")


@pytest.fixture(autouse=True)
def one_torch_thread():
    # On a shared 2-core machine two intra-op threads make the tiny nets several times slower;
    # one thread also makes float results independent of the thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**changes) -> AlphaZeroConfig:
    """5x5 four in a row with a 1-block, 8-channel net: about a second per iteration."""
    settings: dict[str, Any] = dict(
        size=5,
        k=4,
        blocks=1,
        channels=8,
        selfplay=dataclasses.replace(
            AlphaZeroConfig().selfplay, simulations=8, num_parallel_games=8
        ),
        games_per_iteration=8,
        replay_capacity=400,
        batch_size=32,
        train_steps_per_iteration=4,
        iterations=1,
        arena_games=0,
        arena_simulations=8,
        mcts_games=0,
        seed=0,
    )
    settings.update(changes)
    return AlphaZeroConfig(**settings)


def state_dict_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def loaded_net(path):
    return nets.load_net(path)


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"size": 2}, ValueError, "size"),
        ({"size": 9.0}, TypeError, "size"),
        ({"k": 6, "size": 5}, ValueError, "k must be <= 5"),
        ({"blocks": 0}, ValueError, "blocks"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"l2": -1e-4}, ValueError, "l2"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"iterations": 0}, ValueError, "iterations"),
        ({"gating_threshold": 1.5}, ValueError, "gating_threshold"),
        ({"gating_threshold": 0.55, "arena_games": 0}, ValueError, "arena_games"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"selfplay": {"simulations": 8}}, TypeError, "SelfPlayConfig"),
        ({"exact": 1}, TypeError, "exact"),
    ],
)
def test_config_rejects_bad_values(changes, error, words):
    with pytest.raises(error, match=words):
        AlphaZeroConfig(**changes)


def test_config_is_frozen_keyword_only_and_round_trips_through_json():
    config = tiny(gating_threshold=0.55, arena_games=4)
    with pytest.raises(AttributeError):
        config.size = 7  # type: ignore[misc]
    with pytest.raises(TypeError):
        AlphaZeroConfig(9)  # type: ignore[misc]
    data = json.loads(json.dumps(config.to_dict()))
    assert AlphaZeroConfig.from_dict(data) == config
    assert data["selfplay"]["simulations"] == 8
    with pytest.raises(ValueError, match="unknown AlphaZeroConfig fields: colour"):
        AlphaZeroConfig.from_dict({**data, "colour": "red"})
    with pytest.raises(ValueError, match="unknown SelfPlayConfig fields: depth"):
        AlphaZeroConfig.from_dict({**data, "selfplay": {**data["selfplay"], "depth": 3}})


def test_numpy_scalars_in_the_config_still_checkpoint_as_json(tmp_path):
    """Checks accept numpy ints and floats; the checkpoint's config.json and state.json (whose
    step counter adds train_steps_per_iteration) must still serialise."""
    from treesearch.selfplay import SelfPlayConfig

    config = tiny(
        size=np.int64(5),
        train_steps_per_iteration=np.int64(2),
        lr=np.float32(1e-3),
        selfplay=SelfPlayConfig(simulations=np.int64(8), num_parallel_games=np.int32(2)),
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert AlphaZeroConfig.from_dict(data) == config
    assert type(config.size) is int and type(config.train_steps_per_iteration) is int
    assert type(config.lr) is float and type(config.selfplay.simulations) is int
    summary = train(config, tmp_path)  # crashed writing the first checkpoint before
    assert summary.iteration == 1 and summary.step == 2
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded.config == config and loaded.step == 2


def test_default_recipe_is_nine_by_nine_five_in_a_row():
    config = AlphaZeroConfig()
    assert (config.size, config.k, config.exact) == (9, 5, False)
    assert config.l2 == 1e-4 and config.gating_threshold is None
    assert config.board_points == 81


def test_resume_compatibility_names_the_clashing_fields():
    saved = tiny()
    tiny(iterations=9, lr=1e-3, mcts_games=4).check_resumable_from(saved)  # allowed changes
    with pytest.raises(ValueError, match=r"size 5 -> 6.*channels 8 -> 16"):
        tiny(size=6, channels=16).check_resumable_from(saved)


# ---------------------------------------------------------------------------------- replay
def positions(n: int, size: int = 5, seed: int = 0):
    """n distinct positions whose policy is one-hot on the last-move cell (plane 2)."""
    rng = np.random.default_rng(seed)
    planes = np.zeros((n, 4, size, size), np.float32)
    policies = np.zeros((n, size * size), np.float32)
    for i in range(n):
        cells = rng.choice(size * size, size=4, replace=False)
        planes[i, 0].flat[cells[:2]] = 1
        planes[i, 1].flat[cells[2:]] = 1
        planes[i, 2].flat[cells[0]] = 1
        planes[i, 3] = i % 2
        policies[i, cells[0]] = 1.0
    values = np.linspace(-1, 1, n).astype(np.float32)
    return planes, policies, values


def test_replay_ring_keeps_the_newest_positions():
    buffer = ReplayBuffer(3, size=5)
    planes, policies, values = positions(5)
    buffer.add(planes[:2], policies[:2], values[:2])
    assert len(buffer) == 2
    buffer.add(planes[2:], policies[2:], values[2:])
    assert len(buffer) == 3 and buffer.total_added == 5
    kept = buffer.state_arrays()
    assert sorted(kept["value"].tolist()) == sorted(values[2:].tolist())
    big = ReplayBuffer(2, size=5)
    big.add(planes, policies, values)  # more than the capacity at once: the newest 2
    assert sorted(big.state_arrays()["value"].tolist()) == sorted(values[3:].tolist())
    assert big.total_added == 5


def test_replay_sample_without_augmentation_returns_stored_positions():
    buffer = ReplayBuffer(10, size=5)
    planes, policies, values = positions(6)
    buffer.add(planes, policies, values)
    x, pi, z = buffer.sample(50, rng=np.random.default_rng(1), augment=False)
    assert x.dtype == pi.dtype == z.dtype == np.float32
    assert x.shape == (50, 4, 5, 5) and pi.shape == (50, 25) and z.shape == (50,)
    for i in range(50):
        j = int(np.flatnonzero(np.isclose(values, z[i]))[0])
        np.testing.assert_array_equal(x[i], planes[j])
        np.testing.assert_array_equal(pi[i], policies[j])


def test_replay_augmentation_moves_planes_and_policy_together():
    buffer = ReplayBuffer(10, size=5)
    planes, policies, values = positions(6)
    buffer.add(planes, policies, values)
    x, pi, z = buffer.sample(400, rng=np.random.default_rng(2))
    seen = set()
    for i in range(400):
        j = int(np.flatnonzero(np.isclose(values, z[i]))[0])
        matches = [
            index
            for index, (p, q) in enumerate(gomoku.symmetries(planes[j], policies[j]))
            if np.array_equal(p, x[i]) and np.array_equal(q, pi[i])
        ]
        assert matches, f"sample {i} is no symmetry of stored position {j}"
        seen.update(matches)
        assert np.argmax(pi[i]) == np.argmax(x[i, 2])  # the policy follows the last move
    assert seen == set(range(8))


def test_replay_rejects_bad_input():
    buffer = ReplayBuffer(4, size=5)
    planes, policies, values = positions(2)
    with pytest.raises(ValueError, match="planes must have shape"):
        buffer.add(planes[:, :3], policies, values)
    with pytest.raises(ValueError, match="only 0 and 1"):
        buffer.add(planes * 0.5, policies, values)
    with pytest.raises(ValueError, match="sum to 1"):
        buffer.add(planes, policies * 2, values)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        buffer.add(planes, policies, values * 3)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4, rng=np.random.default_rng(0))
    buffer.add(planes, policies, values)
    with pytest.raises(TypeError, match="Generator"):
        buffer.sample(4, rng=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, size=5)


def test_replay_save_load_round_trip_keeps_the_ring(tmp_path):
    buffer = ReplayBuffer(4, size=5)
    planes, policies, values = positions(6)
    buffer.add(planes, policies, values)  # wrapped around: the next slot is 2
    path = buffer.save(tmp_path / "replay.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["replay.npz"]  # no temp file left
    again = ReplayBuffer.load(path)
    assert (len(again), again.capacity, again.total_added) == (4, 4, 6)
    a = buffer.sample(16, rng=np.random.default_rng(5))
    b = again.sample(16, rng=np.random.default_rng(5))
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    more = positions(1, seed=9)
    buffer.add(*more)
    again.add(*more)  # overwrites the same (oldest) slot in both
    for key, value in buffer.state_arrays().items():
        np.testing.assert_array_equal(value, again.state_arrays()[key])
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a replay buffer"):
        ReplayBuffer.load(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------ loss
def test_loss_matches_hand_computed_values():
    # Row 0: p = softmax(0, ln 3) = (1/4, 3/4), pi = (1/2, 1/2), v = 0.5, z = 1.
    # Row 1: p = (1/2, 1/2), pi = (1, 0), v = -1, z = -1.
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])
    value = torch.tensor([0.5, -1.0])
    target_pi = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    target_z = torch.tensor([1.0, -1.0])
    ce0 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    ce1 = -math.log(0.5)
    weights = torch.tensor([1.0, -2.0])
    total, mse, ce = alphazero_loss(logits, value, target_pi, target_z, [weights], 0.1)
    assert mse.item() == pytest.approx((0.25 + 0.0) / 2)
    assert ce.item() == pytest.approx((ce0 + ce1) / 2)
    assert total.item() == pytest.approx(0.125 + (ce0 + ce1) / 2 + 0.1 * 5.0)
    no_l2, _, _ = alphazero_loss(logits, value, target_pi, target_z)
    assert no_l2.item() == pytest.approx(0.125 + (ce0 + ce1) / 2)


def test_loss_gradient_of_policy_term_is_p_minus_pi():
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    total, _, _ = alphazero_loss(logits, torch.zeros(1), torch.tensor([[0.5, 0.5]]), torch.zeros(1))
    total.backward()
    np.testing.assert_allclose(logits.grad.numpy(), [[0.25 - 0.5, 0.75 - 0.5]], atol=1e-6)


def test_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="target_pi"):
        alphazero_loss(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="target_z"):
        alphazero_loss(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2, 3), torch.zeros(3))


# ---------------------------------------------------------------------------------- training
def test_two_iterations_give_finite_losses_and_change_the_network(tmp_path):
    config = tiny(iterations=2, arena_games=2, mcts_games=2, mcts_simulations=8)
    events = []
    summary = train(config, tmp_path, progress=events.append)
    assert (summary.start_iteration, summary.iteration) == (0, 2)
    assert summary.step == 2 * config.train_steps_per_iteration
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    for line in lines:
        for key in ("loss", "value_loss", "policy_loss", "positions_per_second", "seconds"):
            assert math.isfinite(line[key]), key
        assert 0 <= line["win_rate_vs_best"] <= 1 and 0 <= line["win_rate_vs_mcts"] <= 1
        assert sum(line["vs_mcts"]) == 2 and line["games"] == 8
        assert 0 < line["network_share"] < 1
        # The policy loss is a cross-entropy over at most 25 moves: below ln 25 + slack.
        assert 0 < line["policy_loss"] < math.log(25) + 0.5 and line["value_loss"] >= 0
    assert lines[1]["replay_size"] == lines[0]["positions"] + lines[1]["positions"]
    assert lines[1]["total_games"] == 16
    initial = nets.PolicyValueNet(
        5, blocks=1, channels=8, generator=torch.Generator().manual_seed(config.seed)
    )
    trained = loaded_net(tmp_path / "checkpoint" / "model.safetensors")
    changed = [
        name
        for name, p in trained.named_parameters()
        if not torch.equal(p, dict(initial.named_parameters())[name])
    ]
    assert len(changed) == len(list(trained.parameters()))
    best = loaded_net(tmp_path / "best.safetensors")  # no gating: the newest net is the best
    assert state_dict_equal(best, trained) and best.metadata["k"] == "4"
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    phases = {e.phase for e in events}
    assert {"selfplay", "train", "arena", "checkpoint", "iteration"} <= phases
    assert [e.metrics["iteration"] for e in events if e.phase == "iteration"] == [1, 2]
    selfplay_done = [e.done for e in events if e.phase == "selfplay" and e.iteration == 1]
    assert selfplay_done == list(range(9))


def test_same_seed_same_first_iteration(tmp_path):
    first = train(tiny(), tmp_path / "a").metrics[0]
    second = train(tiny(), tmp_path / "b").metrics[0]
    other = train(tiny(seed=1), tmp_path / "c").metrics[0]
    for key in ("loss", "value_loss", "policy_loss", "positions"):
        assert first[key] == second[key], key
    assert first["loss"] != other["loss"]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    config = tiny(iterations=2)
    straight = train(config, tmp_path / "straight")
    train(tiny(iterations=1), tmp_path / "split")
    resumed = train(config, tmp_path / "split")
    assert (resumed.start_iteration, resumed.iteration) == (1, 2)
    for key in ("loss", "value_loss", "policy_loss", "positions", "replay_size"):
        assert resumed.metrics[1][key] == straight.metrics[1][key], key
    assert state_dict_equal(
        loaded_net(tmp_path / "straight" / "checkpoint" / "model.safetensors"),
        loaded_net(tmp_path / "split" / "checkpoint" / "model.safetensors"),
    )
    # A finished run is a no-op.
    again = train(config, tmp_path / "split")
    assert (again.start_iteration, again.iteration, len(again.metrics)) == (2, 2, 2)


def test_checkpoint_round_trip(tmp_path):
    config = tiny(iterations=1)
    train(config, tmp_path)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint is not None
    assert checkpoint.config == config and saved_config(tmp_path) == config
    assert (checkpoint.iteration, checkpoint.step) == (1, 4)
    assert state_dict_equal(checkpoint.net, loaded_net(tmp_path / "checkpoint/model.safetensors"))
    assert len(checkpoint.replay) == checkpoint.metrics[0]["replay_size"] > 0
    assert checkpoint.optimizer_state["state"][0]["step"].item() == 4  # Adam's step counter
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert checkpoint.rng.bit_generator.state == state["rng"]["bit_generator"]
    assert load_checkpoint(tmp_path / "nothing-here") is None


def test_resume_refuses_an_incompatible_config_and_no_resume_refuses_a_checkpoint(tmp_path):
    train(tiny(), tmp_path)
    with pytest.raises(ValueError, match="size 5 -> 6"):
        train(tiny(size=6, iterations=2), tmp_path)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train(tiny(iterations=2), tmp_path, resume=False)


def test_a_checkpoint_folder_without_state_json_is_refused_not_restarted(tmp_path):
    """Starting over would wipe the run's metrics.jsonl and replace its best network."""
    train(tiny(), tmp_path)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    best = (tmp_path / "best.safetensors").read_bytes()
    (tmp_path / "checkpoint" / "state.json").unlink()
    with pytest.raises(ValueError, match=r"damaged checkpoint.*no state\.json"):
        train(tiny(iterations=2), tmp_path)
    with pytest.raises(ValueError, match="damaged checkpoint"):
        load_checkpoint(tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    assert (tmp_path / "best.safetensors").read_bytes() == best


def test_interrupted_checkpoint_swap_is_repaired(tmp_path):
    train(tiny(), tmp_path)
    # A kill between the two renames of a swap leaves only checkpoint.old, plus a temp folder.
    os.replace(tmp_path / "checkpoint", tmp_path / "checkpoint.old")
    (tmp_path / ".checkpoint-tmp-dead").mkdir()
    (tmp_path / ".checkpoint-tmp-dead" / "model.safetensors").write_bytes(b"partial")
    assert saved_config(tmp_path) == tiny()  # readable before the repair
    summary = train(tiny(iterations=2), tmp_path)
    assert summary.start_iteration == 1 and summary.iteration == 2
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".lock", "best.safetensors", "checkpoint", "curves.png", "metrics.jsonl"]


def test_metrics_beyond_the_checkpoint_are_dropped_on_resume(tmp_path):
    train(tiny(), tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    # Iteration 2 finished its metrics line but was killed before its checkpoint.
    metrics.write_text(metrics.read_text() + json.dumps({"iteration": 2, "loss": 9.0}) + "\n")
    summary = train(tiny(iterations=2), tmp_path)
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [1, 2]
    assert lines[1]["loss"] != 9.0 and lines == [dict(m) for m in summary.metrics]


def test_gating_keeps_the_best_net_when_the_new_one_loses(tmp_path):
    # A threshold of 1.0 over 2 games: the new net must win both to replace the best.
    summary = train(tiny(iterations=2, arena_games=2, gating_threshold=1.0), tmp_path)
    best = loaded_net(tmp_path / "best.safetensors")
    newest = loaded_net(tmp_path / "checkpoint" / "model.safetensors")
    for line in summary.metrics:
        assert line["accepted"] == (line["win_rate_vs_best"] >= 1.0)
    last_accepted = max((m["iteration"] for m in summary.metrics if m["accepted"]), default=0)
    assert summary.best_iteration == last_accepted
    assert state_dict_equal(best, newest) == (last_accepted == 2)


def test_train_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="AlphaZeroConfig"):
        train({"size": 5}, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        train(tiny(), tmp_path, progress=3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ SIGKILL
_TINY_FLAGS = [
    "--size", "5", "--k", "4", "--blocks", "1", "--channels", "8", "--sims", "8",
    "--parallel-games", "8", "--games-per-iteration", "8", "--replay", "400",
    "--batch-size", "32", "--train-steps", "4", "--arena-games", "0", "--arena-sims", "8",
    "--mcts-games", "0",
    "--seed", "0", "--threads", "1",
]  # fmt: skip


def test_sigkill_then_resume_continues_from_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "treesearch.cli", "train", "gomoku", *_TINY_FLAGS]
    process = subprocess.Popen(
        [*command, "--iterations", "1000", "--out", str(run)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint" / "state.json").exists():
            if process.poll() is not None:
                pytest.fail(f"training exited early: {process.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint within 120 s")
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()

    checkpoint = load_checkpoint(run)
    assert checkpoint is not None
    done = checkpoint.iteration
    assert done >= 1 and len(checkpoint.metrics) == done
    assert state_dict_equal(checkpoint.net, loaded_net(checkpoint.path / "model.safetensors"))
    config = checkpoint.config
    assert config == tiny(iterations=1000)

    resumed = train(tiny(iterations=done + 1), run)
    assert (resumed.start_iteration, resumed.iteration) == (done, done + 1)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == list(range(1, done + 2))
    assert lines[-1]["replay_size"] == min(
        config.replay_capacity, len(checkpoint.replay) + lines[-1]["positions"]
    )
    assert resumed.step == checkpoint.step + config.train_steps_per_iteration
    # The resumed run is the uninterrupted run: same losses and the same final weights.
    straight = train(tiny(iterations=done + 1), tmp_path / "straight")
    for key in ("loss", "value_loss", "policy_loss", "positions"):
        assert resumed.metrics[-1][key] == straight.metrics[-1][key], key
    assert state_dict_equal(
        loaded_net(run / "checkpoint" / "model.safetensors"),
        loaded_net(tmp_path / "straight" / "checkpoint" / "model.safetensors"),
    )


def test_importing_the_module_loads_no_torch(tmp_path):
    code = textwrap.dedent(
        """
        import sys, treesearch
        assert "treesearch.train" not in sys.modules
        import treesearch.train
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib")))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_second_trainer_on_the_same_run_directory_is_refused(tmp_path):
    from treesearch.train.alphazero import _run_lock

    with _run_lock(tmp_path), pytest.raises(RuntimeError, match="another training run"):
        train(tiny(), tmp_path)
