"""AlphaZero training for Gomoku: self-play, a replay buffer, SGD, arena games and checkpoints.

The loop of Silver et al., "Mastering the game of Go without human knowledge" (AlphaGo Zero,
Nature 2017) and "A general reinforcement learning algorithm that masters chess, shogi and Go
through self-play" (AlphaZero, Science 2018), at the scale of junxiaosong/AlphaZero_Gomoku:

1. **Self-play.** The current network plays ``games_per_iteration`` games against itself with
   PUCT search (:func:`treesearch.selfplay.play_games`, batched over games; Dirichlet root
   noise; tau = 1 for the first moves, then the most visited move).
2. **Replay.** Every position becomes (planes, pi, z): pi the root visit distribution, z the
   final result from the mover's point of view. A fixed-size ring buffer keeps the newest
   ``replay_capacity`` positions; each sampled position is shown in one of the 8 board
   symmetries, drawn at random (:class:`ReplayBuffer`).
3. **Training.** ``train_steps_per_iteration`` Adam steps on minibatches, minimising
   (z - v)^2 - sum_a pi(a) log p(a) + c ||theta||^2 (:func:`alphazero_loss`; the L2 term is
   explicit in the loss, not optimiser weight decay, so the reported loss is the paper's).
4. **Arena.** The new network plays the previous best (AlphaGo Zero's gating: it replaces the
   best only when it wins at least ``gating_threshold`` of the games; ``None`` keeps
   AlphaZero's rule, every new network is the best) and pure MCTS with random rollouts (the
   fixed yardstick of junxiaosong/AlphaZero_Gomoku), both through :func:`games.arena.play_match`.
5. **Record.** One JSON line per iteration in ``metrics.jsonl``, the curves in ``curves.png``,
   the best network in ``best.safetensors``, and an atomic checkpoint.

**Nothing lost.** ``run_dir/checkpoint/`` holds everything a run needs to continue exactly
where it stopped: both networks (safetensors), the optimiser state, the replay buffer, the
random generator's state, the counters, the config and the metrics so far. It is written into
a temporary folder inside ``run_dir``, flushed to disk, and swapped in with two renames; the
previous checkpoint is kept until the new one is complete, and an interrupted swap is repaired
on the next start. ``train(..., resume=True)`` continues from it after a crash or ``kill -9``;
``metrics.jsonl`` and ``best.safetensors`` are rewritten from the checkpoint's copies, so no
line is duplicated or lost.

All randomness after initialisation comes from one ``numpy.random.Generator`` (self-play,
minibatches, symmetries, arena) whose state is checkpointed; torch draws random numbers only to
initialise the network, under a forked and seeded torch RNG, so no global state is touched. On
CPU the same seed gives the same run, and a resumed run the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from treesearch.selfplay import SelfPlayConfig

if TYPE_CHECKING:
    import torch

__all__ = [
    "AlphaZeroConfig",
    "Checkpoint",
    "ReplayBuffer",
    "TrainProgress",
    "TrainSummary",
    "alphazero_loss",
    "load_checkpoint",
    "plot_curves",
    "saved_config",
    "train",
]

_log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
BEST = "best.safetensors"
_OLD_CHECKPOINT = "checkpoint.old"
_TMP_PREFIX = ".checkpoint-tmp-"
_LOCK = ".lock"
_FORMAT = 1
_NUM_SYMMETRIES = 8
# curves.png is redrawn after an iteration when this many seconds passed since the last
# drawing, and at the end of the call (a drawing costs about half a second).
_PLOT_INTERVAL = 30.0

# Changing these between a checkpoint and a resumed run would change the network's shape, the
# game, or the replay buffer's layout: a resume refuses them. Everything else (iterations,
# learning rate, self-play and arena settings, device) may change on resume.
_FIXED_ON_RESUME = ("size", "k", "exact", "blocks", "channels", "replay_capacity")


def _default_selfplay() -> SelfPlayConfig:
    # 9x9 five-in-a-row on a 2-core CPU: 128 simulations with tree reuse; 32 games advance
    # together so each network call sees a batch of 32 leaves (larger batches barely help on
    # a CPU, and the tail of an iteration runs with fewer games). alpha = 0.15 is about
    # 10 / (legal moves), the rule of thumb behind AlphaZero's 0.3 / 0.15 / 0.03.
    return SelfPlayConfig(simulations=128, num_parallel_games=32, dirichlet_alpha=0.15)


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True, kw_only=True)
class AlphaZeroConfig:
    """Settings of one AlphaZero training run (frozen; every field is checked).

    The defaults are the recipe for 9x9 five in a row on a 2-core CPU in about an hour:
    30 iterations, each of 64 self-play games with 128 simulations per move (32 games batched
    together), 128 Adam steps of 256 positions (lr 2e-3, c = 1e-4) from a 50,000-position
    replay buffer with symmetry augmentation, a 4-block, 32-channel residual network, then 6
    arena games against the previous network and 10 against pure MCTS with 400 random
    rollouts per move (the networks search 64 simulations there). The first iteration is
    about 2,000 positions and 90-100 s of one CPU core (self-play about 70%, arena 18%,
    training 12%), and each iteration ends with a checkpoint.

    Attributes:
        size: board side (3..26).
        k: stones in a row that win (2..size).
        exact: only exactly ``k`` in a row wins (overlines do not).
        blocks: residual blocks of the network.
        channels: convolution channels of the network.
        selfplay: search and exploration settings of self-play
            (:class:`treesearch.selfplay.SelfPlayConfig`).
        games_per_iteration: self-play games per iteration.
        replay_capacity: positions kept in the replay buffer (the newest; before augmentation).
        batch_size: positions per gradient step.
        train_steps_per_iteration: gradient steps per iteration.
        lr: Adam learning rate.
        l2: the L2 coefficient c in the loss (AlphaZero: 1e-4).
        iterations: iterations in the run (a resumed run continues up to this number).
        arena_games: games of the new network against the previous best per iteration
            (0: skip; required for gating).
        arena_simulations: simulations per move of the networks in arena games (``None``:
            the self-play simulations).
        arena_opening_moves: random moves that open each pair of arena games (the pair swaps
            colours), so that two deterministic networks do not replay one game.
        mcts_games: games against pure MCTS (UCT with random rollouts) per iteration (0: skip).
        mcts_simulations: simulations per move of that MCTS opponent.
        gating_threshold: the win rate (draws count half) the new network needs against the
            previous best to replace it; ``None``: no gating, every new network is the best
            and self-play always uses the newest network.
        checkpoint_interval: iterations between checkpoints (the last iteration is always
            checkpointed).
        seed: seed of the run's random generator and of the network's initialisation.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``).
    """

    size: int = 9
    k: int = 5
    exact: bool = False
    blocks: int = 4
    channels: int = 32
    selfplay: SelfPlayConfig = field(default_factory=_default_selfplay)
    games_per_iteration: int = 64
    replay_capacity: int = 50_000
    batch_size: int = 256
    train_steps_per_iteration: int = 128
    lr: float = 2e-3
    l2: float = 1e-4
    iterations: int = 30
    arena_games: int = 6
    arena_simulations: int | None = 64
    arena_opening_moves: int = 2
    mcts_games: int = 10
    mcts_simulations: int = 400
    gating_threshold: float | None = None
    checkpoint_interval: int = 1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_int("size", self.size, 3, maximum=26)
        _check_int("k", self.k, 2, maximum=self.size)
        if not isinstance(self.exact, bool):
            raise TypeError(f"exact must be True or False, got {self.exact!r}")
        _check_int("blocks", self.blocks, 1)
        _check_int("channels", self.channels, 1)
        if not isinstance(self.selfplay, SelfPlayConfig):
            raise TypeError(
                f"selfplay must be a treesearch.selfplay.SelfPlayConfig, got "
                f"{type(self.selfplay).__name__}"
            )
        _check_int("games_per_iteration", self.games_per_iteration, 1)
        _check_int("replay_capacity", self.replay_capacity, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("train_steps_per_iteration", self.train_steps_per_iteration, 0)
        _check_float("lr", self.lr, positive=True)
        _check_float("l2", self.l2)
        _check_int("iterations", self.iterations, 1)
        _check_int("arena_games", self.arena_games, 0)
        if self.arena_simulations is not None:
            _check_int("arena_simulations", self.arena_simulations, 2)
        _check_int("arena_opening_moves", self.arena_opening_moves, 0)
        _check_int("mcts_games", self.mcts_games, 0)
        _check_int("mcts_simulations", self.mcts_simulations, 1)
        if self.gating_threshold is not None:
            _check_float("gating_threshold", self.gating_threshold)
            if not 0.0 < self.gating_threshold <= 1.0:
                raise ValueError(
                    f"gating_threshold must be in (0, 1] or None, got {self.gating_threshold}"
                )
            if self.arena_games == 0:
                raise ValueError(
                    "gating_threshold needs arena games against the previous best: "
                    "set arena_games >= 1 or gating_threshold=None"
                )
        _check_int("checkpoint_interval", self.checkpoint_interval, 1)
        _check_int("seed", self.seed, 0)
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {self.device!r}")
        kind, _, index = self.device.partition(":")
        if kind not in ("cpu", "cuda") or (index and not (kind == "cuda" and index.isdigit())):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        # numpy scalars pass the checks; keep plain Python values so that the config, the
        # counters derived from it and the checkpoint's JSON files serialise.
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.generic):
                object.__setattr__(self, item.name, value.item())

    @property
    def board_points(self) -> int:
        """Points on the board: the length of a policy vector."""
        return self.size * self.size

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON data (``selfplay`` as a nested dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlphaZeroConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AlphaZeroConfig fields: {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("selfplay"), Mapping):
            play_fields = {f.name for f in dataclasses.fields(SelfPlayConfig)}
            play = dict(values["selfplay"])
            unknown = sorted(set(play) - play_fields)
            if unknown:
                raise ValueError(f"unknown SelfPlayConfig fields: {', '.join(unknown)}")
            values["selfplay"] = SelfPlayConfig(**play)
        return cls(**values)

    def check_resumable_from(self, saved: AlphaZeroConfig) -> None:
        """Raise ``ValueError`` naming every field that a resume cannot change."""
        clashes = [
            f"{name} {getattr(saved, name)!r} -> {getattr(self, name)!r}"
            for name in _FIXED_ON_RESUME
            if getattr(saved, name) != getattr(self, name)
        ]
        if clashes:
            raise ValueError(
                "cannot resume: the checkpoint was trained with a different "
                + "; ".join(clashes)
                + " (use a new run directory, or the original settings)"
            )


def _check_int(name: str, value: object, minimum: int, *, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")


def _check_float(name: str, value: object, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} finite number, got {value}")


# ------------------------------------------------------------------------------------ replay
class ReplayBuffer:
    """A fixed-capacity ring buffer of training positions (planes, pi, z), newest kept.

    Positions are stored once, as played; augmentation happens when sampling: each sampled
    position is shown in one of the 8 dihedral symmetries of the board, drawn uniformly, with
    its policy transformed the same way (the transforms are those of
    :func:`treesearch.games.gomoku.transform`). Storing one copy instead of all 8 keeps 8x more
    distinct positions in the same memory, and a minibatch is not 8 views of the same game.

    The feature planes hold 0/1 values (Gomoku's stones, last move and side to move) and are
    stored as ``uint8``; policies and values as ``float32``.

    Args:
        capacity: the most positions kept; adding more overwrites the oldest.
        size: board side; policies have ``size * size`` entries.
        num_planes: feature planes per position.
    """

    def __init__(self, capacity: int, *, size: int, num_planes: int = 4) -> None:
        _check_int("capacity", capacity, 1)
        _check_int("size", size, 1)
        _check_int("num_planes", num_planes, 1)
        self.capacity = int(capacity)
        self.size = int(size)
        self.num_planes = int(num_planes)
        points = self.size * self.size
        self._planes = np.zeros((self.capacity, self.num_planes, self.size, self.size), np.uint8)
        self._policy = np.zeros((self.capacity, points), np.float32)
        self._value = np.zeros(self.capacity, np.float32)
        self._count = 0  # filled slots
        self._next = 0  # the slot the next position goes to (the oldest once full)
        self.total_added = 0
        self._perms: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._count

    def add(self, planes: np.ndarray, policies: np.ndarray, values: np.ndarray) -> None:
        """Append a batch: ``planes (N, C, size, size)`` of 0/1, ``policies (N, size*size)``
        (non-negative, each summing to 1), ``values (N,)`` in [-1, 1]."""
        planes = np.asarray(planes)
        policies = np.asarray(policies, dtype=np.float32)
        values = np.asarray(values, dtype=np.float32)
        n = len(planes)
        shape = (self.num_planes, self.size, self.size)
        if planes.ndim != 4 or planes.shape[1:] != shape:
            raise ValueError(
                f"planes must have shape (N, {shape[0]}, {shape[1]}, {shape[2]}), "
                f"got {planes.shape}"
            )
        if policies.shape != (n, self.size * self.size):
            raise ValueError(
                f"policies must have shape ({n}, {self.size * self.size}), got {policies.shape}"
            )
        if values.shape != (n,):
            raise ValueError(f"values must have shape ({n},), got {values.shape}")
        if not np.isin(planes, (0, 1)).all():
            raise ValueError("planes must hold only 0 and 1 (they are stored as uint8)")
        if not (np.isfinite(policies).all() and (policies >= 0).all()):
            raise ValueError("policies must be finite and non-negative")
        if n and not np.allclose(policies.sum(axis=1), 1.0, atol=1e-4):
            raise ValueError("every policy must sum to 1")
        if not (np.isfinite(values).all() and (np.abs(values) <= 1).all()):
            raise ValueError("values must be finite and in [-1, 1]")
        if n > self.capacity:  # only the newest fit
            planes, policies, values = (
                planes[-self.capacity :],
                policies[-self.capacity :],
                values[-self.capacity :],
            )
            self.total_added += n - self.capacity
            n = self.capacity
        slots = (self._next + np.arange(n)) % self.capacity
        self._planes[slots] = planes
        self._policy[slots] = policies
        self._value[slots] = values
        self._next = int((self._next + n) % self.capacity)
        self._count = min(self.capacity, self._count + n)
        self.total_added += n

    def sample(
        self, batch_size: int, *, rng: np.random.Generator, augment: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A minibatch drawn uniformly with replacement.

        Returns:
            ``planes (B, C, size, size) float32``, ``policies (B, size*size) float32`` and
            ``values (B,) float32``; with ``augment`` each position in a random symmetry.
        """
        _check_int("batch_size", batch_size, 1)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if self._count == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = rng.integers(0, self._count, size=batch_size)
        planes = self._planes[index].reshape(batch_size, self.num_planes, -1)
        policies = self._policy[index]
        if augment:
            plane_perms, policy_perms = self._permutations()
            which = rng.integers(0, _NUM_SYMMETRIES, size=batch_size)
            planes = np.take_along_axis(planes, plane_perms[which][:, None, :], axis=2)
            policies = np.take_along_axis(policies, policy_perms[which], axis=1)
        return (
            planes.reshape(batch_size, self.num_planes, self.size, self.size).astype(np.float32),
            np.ascontiguousarray(policies, dtype=np.float32),
            self._value[index].copy(),
        )

    def _permutations(self) -> tuple[np.ndarray, np.ndarray]:
        """For each symmetry, the source point of every destination point, for planes and for
        policies: ``transform`` applied to an array of point indices."""
        if self._perms is None:
            from treesearch.games.gomoku import transform

            points = self.size * self.size
            ids = np.arange(points, dtype=np.float64)
            id_planes = ids.reshape(1, self.size, self.size)
            plane_perms, policy_perms = [], []
            for index in range(_NUM_SYMMETRIES):
                moved_planes, moved_policy = transform(id_planes, ids, index)
                plane_perms.append(np.rint(np.asarray(moved_planes)).astype(np.int64).ravel())
                policy_perms.append(np.rint(np.asarray(moved_policy)).astype(np.int64).ravel())
            self._perms = (np.stack(plane_perms), np.stack(policy_perms))
        return self._perms

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The filled slots in ring order, with the ring's bookkeeping."""
        n = self._count
        return {
            "planes": self._planes[:n],
            "policy": self._policy[:n],
            "value": self._value[:n],
            "meta": np.array(
                [self.capacity, self.size, self.num_planes, self._next, self.total_added],
                dtype=np.int64,
            ),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the buffer to an ``.npz`` file atomically (temp file, fsync, rename)."""
        path = Path(path)
        with _atomic_file(path) as handle:
            arrays = self.state_arrays()
            np.savez(
                handle,
                planes=arrays["planes"],
                policy=arrays["policy"],
                value=arrays["value"],
                meta=arrays["meta"],
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReplayBuffer:
        """Read a buffer written by :meth:`save`, ring position included (so sampling after a
        load draws the same positions as it would have before the save)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = data["meta"]
                planes, policy, value = data["planes"], data["policy"], data["value"]
        except FileNotFoundError:
            raise
        except (KeyError, ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path} is not a replay buffer file: {exc}") from exc
        capacity, size, num_planes, next_slot, total = (int(v) for v in meta)
        buffer = cls(capacity, size=size, num_planes=num_planes)
        n = len(planes)
        if n > capacity or not (0 <= next_slot < capacity) or len(policy) != n or len(value) != n:
            raise ValueError(f"{path}: inconsistent replay buffer file")
        buffer._planes[:n] = planes
        buffer._policy[:n] = policy
        buffer._value[:n] = value
        buffer._count, buffer._next, buffer.total_added = n, next_slot, total
        return buffer


# -------------------------------------------------------------------------------------- loss
def alphazero_loss(
    policy_logits: torch.Tensor,
    value: torch.Tensor,
    target_pi: torch.Tensor,
    target_z: torch.Tensor,
    params: Sequence[torch.Tensor] | Iterator[torch.Tensor] = (),
    l2: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The AlphaZero loss, (z - v)^2 - sum_a pi(a) log p(a) + c ||theta||^2, batch-averaged.

    Args:
        policy_logits: ``(B, A)`` network logits (p = softmax).
        value: ``(B,)`` network values.
        target_pi: ``(B, A)`` search policies (rows sum to 1).
        target_z: ``(B,)`` game results from the mover's point of view.
        params: the parameters the L2 term covers (all of the network's, as in the paper).
        l2: the coefficient c. The penalty is part of this loss, so the optimiser must not add
            weight decay as well.

    Returns:
        ``(total, value_mse, policy_ce)``; the L2 term is ``total - value_mse - policy_ce``.
    """
    import torch
    import torch.nn.functional as F

    if policy_logits.ndim != 2 or target_pi.shape != policy_logits.shape:
        raise ValueError(
            f"policy_logits and target_pi must both be (B, A), got {tuple(policy_logits.shape)} "
            f"and {tuple(target_pi.shape)}"
        )
    batch = policy_logits.shape[0]
    if value.shape != (batch,) or target_z.shape != (batch,):
        raise ValueError(
            f"value and target_z must be ({batch},), got {tuple(value.shape)} and "
            f"{tuple(target_z.shape)}"
        )
    _check_float("l2", l2)
    value_mse = torch.mean((target_z - value) ** 2)
    policy_ce = -torch.mean(torch.sum(target_pi * F.log_softmax(policy_logits, dim=-1), dim=-1))
    total = value_mse + policy_ce
    if l2:
        total = total + l2 * sum((p * p).sum() for p in params)
    return total, value_mse, policy_ce


# ------------------------------------------------------------------------------- file helpers
@contextlib.contextmanager
def _atomic_file(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Write ``path`` through a temp file in the same folder, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_text(path: Path, text: str) -> None:
    with _atomic_file(path, "w") as handle:
        handle.write(text)


def _copy_file(source: Path, target: Path) -> None:
    with _atomic_file(target) as handle, open(source, "rb") as src:
        shutil.copyfileobj(src, handle)


def _fsync_dir(path: Path) -> None:
    # Makes renames inside ``path`` durable; some platforms cannot open a folder.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for item in folder.iterdir():
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _metrics_text(metrics: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(line, sort_keys=True) + "\n" for line in metrics)


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Refuse a second trainer on the same run directory (the lock dies with the process)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        yield
        return
    with open(run_dir / _LOCK, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RuntimeError(f"another training run is using {run_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# -------------------------------------------------------------------------------- checkpoint
@dataclass
class Checkpoint:
    """A checkpoint read back by :func:`load_checkpoint`.

    Attributes:
        path: the checkpoint folder read.
        config: the run's config when it was written.
        iteration: iterations completed.
        step: gradient steps taken.
        total_games: self-play games played.
        total_positions: self-play positions recorded.
        best_iteration: the iteration that produced the best network (0: the initial one).
        net: the newest network (eval mode).
        best_net: the best network (eval mode).
        optimizer_state: the Adam state dict.
        replay: the replay buffer.
        rng: the run's generator, in the state it had after the checkpointed iteration.
        metrics: the metrics lines of iterations ``1..iteration``.
        elapsed_seconds: training time spent up to the checkpoint.
    """

    path: Path
    config: AlphaZeroConfig
    iteration: int
    step: int
    total_games: int
    total_positions: int
    best_iteration: int
    net: Any
    best_net: Any
    optimizer_state: dict[str, Any]
    replay: ReplayBuffer
    rng: np.random.Generator
    metrics: list[dict[str, Any]]
    elapsed_seconds: float


def _repair_checkpoint_swap(run_dir: Path) -> None:
    """Finish or undo a checkpoint swap that a kill interrupted, and drop temp folders."""
    current, old = run_dir / CHECKPOINT, run_dir / _OLD_CHECKPOINT
    if old.is_dir():
        if current.is_dir():  # killed after the new checkpoint was in place
            shutil.rmtree(old)
        else:  # killed between the two renames: the old one is the last complete checkpoint
            os.replace(old, current)
        _fsync_dir(run_dir)
    for tmp in run_dir.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _checkpoint_dir(run_dir: Path) -> Path | None:
    for name in (CHECKPOINT, _OLD_CHECKPOINT):
        if (run_dir / name / "state.json").is_file():
            return run_dir / name
    # Checkpoints are swapped in complete, so a folder without state.json was damaged after
    # the fact. Treating it as "no checkpoint" would start the run over and overwrite its
    # metrics.jsonl and best.safetensors.
    for name in (CHECKPOINT, _OLD_CHECKPOINT):
        if (run_dir / name).exists():
            raise ValueError(
                f"damaged checkpoint in {run_dir / name}: it has no state.json (move it away to "
                "start the run over)"
            )
    return None


def _net_metadata(config: AlphaZeroConfig, iteration: int) -> dict[str, str]:
    return {
        "game": "gomoku",
        "size": str(config.size),
        "k": str(config.k),
        "exact": str(config.exact).lower(),
        "c_puct": repr(float(config.selfplay.c_puct)),  # AlphaZeroPlayer reads it
        "iteration": str(iteration),
    }


def _save_checkpoint(
    run_dir: Path,
    *,
    config: AlphaZeroConfig,
    counters: dict[str, Any],
    net: Any,
    best_net: Any,
    optimizer: Any,
    replay: ReplayBuffer,
    rng: np.random.Generator,
    metrics: Sequence[Mapping[str, Any]],
) -> Path:
    import torch

    from treesearch.games.nets import save_net

    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=_TMP_PREFIX))
    try:
        iteration = int(counters["iteration"])
        save_net(tmp / "model.safetensors", net, metadata=_net_metadata(config, iteration))
        best_meta = _net_metadata(config, int(counters["best_iteration"]))
        save_net(tmp / "best.safetensors", best_net, metadata=best_meta)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        replay.save(tmp / "replay.npz")
        (tmp / "metrics.jsonl").write_text(_metrics_text(metrics))
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
        state = {
            "format": _FORMAT,
            **counters,
            "rng": {"bit_generator": rng.bit_generator.state},
        }
        # state.json last: a folder holding it is a complete checkpoint.
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        _fsync_tree(tmp)
        current, old = run_dir / CHECKPOINT, run_dir / _OLD_CHECKPOINT
        if current.exists():
            os.replace(current, old)
        os.replace(tmp, current)
        _fsync_dir(run_dir)
        if old.exists():
            shutil.rmtree(old)
        return current
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _restore_rng(saved: Mapping[str, Any]) -> np.random.Generator:
    name = saved.get("bit_generator")
    bit_generator_cls = getattr(np.random, str(name), None)
    if not (
        isinstance(bit_generator_cls, type)
        and issubclass(bit_generator_cls, np.random.BitGenerator)
    ):
        raise ValueError(f"unknown bit generator in checkpoint: {name!r}")
    bit_generator = bit_generator_cls()
    bit_generator.state = dict(saved)
    return np.random.Generator(bit_generator)


def saved_config(run_dir: str | os.PathLike[str]) -> AlphaZeroConfig | None:
    """The config of a run directory's last checkpoint, or ``None`` when it has none (reads
    only ``config.json``; needs no torch)."""
    folder = _checkpoint_dir(Path(run_dir))
    if folder is None:
        return None
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"damaged checkpoint in {folder}: {exc}") from exc
    return AlphaZeroConfig.from_dict(data)


def load_checkpoint(run_dir: str | os.PathLike[str], *, device: str = "cpu") -> Checkpoint | None:
    """Read the last complete checkpoint of a run, or ``None`` when it has none.

    Reads ``run_dir/checkpoint/`` (or the previous checkpoint that a kill in the middle of a
    swap left in ``checkpoint.old/``); changes nothing on disk. A damaged checkpoint raises
    ``ValueError``.
    """
    import torch

    from treesearch.games.nets import load_net

    folder = _checkpoint_dir(Path(run_dir))
    if folder is None:
        return None
    try:
        state = json.loads((folder / "state.json").read_text())
        config = AlphaZeroConfig.from_dict(json.loads((folder / "config.json").read_text()))
        metrics = [
            json.loads(line)
            for line in (folder / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"damaged checkpoint in {folder}: {exc}") from exc
    if state.get("format") != _FORMAT:
        raise ValueError(f"{folder}: unknown checkpoint format {state.get('format')!r}")
    net = load_net(folder / "model.safetensors", device=device)
    best_net = load_net(folder / "best.safetensors", device=device)
    net.eval()
    best_net.eval()
    optimizer_state = torch.load(folder / "optimizer.pt", map_location=device, weights_only=True)
    replay = ReplayBuffer.load(folder / "replay.npz")
    if (replay.size, replay.capacity) != (config.size, config.replay_capacity):
        raise ValueError(f"{folder}: replay buffer does not match the checkpoint's config")
    return Checkpoint(
        path=folder,
        config=config,
        iteration=int(state["iteration"]),
        step=int(state["step"]),
        total_games=int(state["total_games"]),
        total_positions=int(state["total_positions"]),
        best_iteration=int(state["best_iteration"]),
        net=net,
        best_net=best_net,
        optimizer_state=optimizer_state,
        replay=replay,
        rng=_restore_rng(state["rng"]["bit_generator"]),
        metrics=metrics[: int(state["iteration"])],
        elapsed_seconds=float(state.get("elapsed_seconds", 0.0)),
    )


# ---------------------------------------------------------------------------------- plotting
_CURVES = (
    ("loss", ("loss", "value_loss", "policy_loss"), "loss"),
    ("strength", ("win_rate_vs_best", "win_rate_vs_mcts"), "win rate (draws half)"),
    ("self-play speed", ("positions_per_second",), "positions / s"),
    ("replay", ("replay_size",), "positions"),
)


def plot_curves(metrics: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Draw the training curves (losses, arena win rates, self-play speed, replay size) of a
    run's metrics lines to a PNG file, atomically. Needs matplotlib (Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    figure = Figure(figsize=(10, 7))
    # Fixed margins: a layout engine would double the drawing time.
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.95, wspace=0.25, hspace=0.35)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2).ravel()
    for ax, (title, keys, ylabel) in zip(axes, _CURVES, strict=True):
        for key in keys:
            points = [
                (m["iteration"], m[key])
                for m in metrics
                if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=key)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.has_data() and len(keys) > 1:
            ax.legend(fontsize=8)
    axes[1].set_ylim(-0.05, 1.05)
    with _atomic_file(path) as handle:
        figure.savefig(handle, format="png", dpi=100)
    return path


# ------------------------------------------------------------------------------------- train
@dataclass(frozen=True)
class TrainProgress:
    """What :func:`train` reports to its ``progress`` callback.

    Attributes:
        iteration: the iteration in progress (1-based); for ``"resume"`` the checkpointed one.
        iterations: the run's last iteration.
        phase: ``"resume"`` (once, when continuing a checkpoint), ``"selfplay"`` (``done`` /
            ``total`` games), ``"train"`` (gradient steps), ``"arena"`` (arena games),
            ``"checkpoint"`` or ``"iteration"`` (the iteration is over; ``metrics`` holds its
            line).
        done: units of the phase finished.
        total: units in the phase.
        metrics: the iteration's metrics line, for ``phase == "iteration"``.
    """

    iteration: int
    iterations: int
    phase: str
    done: int = 0
    total: int = 0
    metrics: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TrainSummary:
    """What :func:`train` returns.

    Attributes:
        run_dir: the run directory.
        start_iteration: the iteration the call started from (0 for a fresh run, else the
            checkpoint it resumed).
        iteration: iterations completed now.
        step: gradient steps taken in the whole run.
        total_games: self-play games in the whole run.
        total_positions: self-play positions in the whole run.
        replay_size: positions in the replay buffer.
        best_iteration: the iteration whose network is ``best.safetensors`` (0: initial).
        metrics: every metrics line of the run, iteration 1 first.
        seconds: wall time of this call.
        best_path: ``run_dir/best.safetensors``.
        checkpoint_path: ``run_dir/checkpoint``.
        metrics_path: ``run_dir/metrics.jsonl``.
        curves_path: ``run_dir/curves.png``, or ``None`` when it could not be drawn.
    """

    run_dir: Path
    start_iteration: int
    iteration: int
    step: int
    total_games: int
    total_positions: int
    replay_size: int
    best_iteration: int
    metrics: tuple[Mapping[str, Any], ...]
    seconds: float
    best_path: Path
    checkpoint_path: Path
    metrics_path: Path
    curves_path: Path | None


ProgressFn = Callable[[TrainProgress], None]


def _resolve_device(device: str) -> str:
    from treesearch.games.nets import resolve_device

    return str(resolve_device(device))


def _new_net(config: AlphaZeroConfig, in_planes: int, device: str) -> Any:
    import torch

    from treesearch.games.nets import PolicyValueNet

    net = PolicyValueNet(
        config.size,
        in_planes=in_planes,
        blocks=config.blocks,
        channels=config.channels,
        generator=torch.Generator().manual_seed(config.seed),
    )
    return net.to(device)


def _new_game(config: AlphaZeroConfig) -> Callable[[], Any]:
    from treesearch.games.gomoku import Gomoku

    def new_game() -> Any:
        return Gomoku(size=config.size, k=config.k, exact=config.exact)

    return new_game


def _self_play(
    config: AlphaZeroConfig,
    net: Any,
    rng: np.random.Generator,
    report: Callable[[str, int, int], None],
) -> tuple[list[Any], Any]:
    from treesearch.games.nets import NetEvaluator
    from treesearch.selfplay import SelfPlayStats, play_games

    net.eval()
    stats = SelfPlayStats()
    total = config.games_per_iteration
    finished = 0

    def game_over(_: Any) -> None:
        nonlocal finished
        finished += 1
        report("selfplay", finished, total)

    report("selfplay", 0, total)
    records = play_games(
        NetEvaluator(net, device=config.device),
        _new_game(config),
        total,
        config=config.selfplay,
        rng=rng,
        stats=stats,
        progress=game_over,
    )
    return records, stats


def _targets(records: Sequence[Any], points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack every searched position of ``records`` as (planes, dense pi, z)."""
    from treesearch.selfplay import dense_policy, position_targets

    planes, policies, values = [], [], []
    for record in records:
        for state, actions, policy, z in position_targets(record):
            planes.append(state.planes())  # type: ignore[attr-defined]  # a Gomoku state
            policies.append(dense_policy(actions, policy, points))
            values.append(z)
    return (
        np.stack(planes),
        np.stack(policies),
        np.asarray(values, dtype=np.float32),
    )


def _train_steps(
    config: AlphaZeroConfig,
    net: Any,
    optimizer: Any,
    replay: ReplayBuffer,
    rng: np.random.Generator,
    report: Callable[[str, int, int], None],
) -> dict[str, float]:
    import torch

    steps = config.train_steps_per_iteration
    sums = {"loss": 0.0, "value_loss": 0.0, "policy_loss": 0.0}
    if steps == 0 or len(replay) == 0:
        return {key: math.nan for key in sums}
    net.train()
    params = list(net.parameters())
    report("train", 0, steps)
    for step in range(steps):
        planes, pi, z = replay.sample(config.batch_size, rng=rng)
        x = torch.from_numpy(planes).to(config.device)
        target_pi = torch.from_numpy(pi).to(config.device)
        target_z = torch.from_numpy(z).to(config.device)
        logits, value = net(x)
        total, value_mse, policy_ce = alphazero_loss(
            logits, value, target_pi, target_z, params, config.l2
        )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        sums["loss"] += float(total.detach())
        sums["value_loss"] += float(value_mse.detach())
        sums["policy_loss"] += float(policy_ce.detach())
        report("train", step + 1, steps)
    net.eval()
    if not all(math.isfinite(v) for v in sums.values()):
        raise RuntimeError(f"training diverged: non-finite loss {sums} (lower lr?)")
    return {key: value / steps for key, value in sums.items()}


def _arena_openings(
    config: AlphaZeroConfig, games: int, rng: np.random.Generator
) -> Callable[[], Any]:
    """``new_game`` for an arena match: games 2i and 2i + 1 (colours swapped) start from the
    same ``arena_opening_moves`` random moves. Networks search without noise and play their
    most visited move, so without random openings a match would repeat two games."""
    from treesearch.games.gomoku import Gomoku

    empty = Gomoku(size=config.size, k=config.k, exact=config.exact)
    count = min(config.arena_opening_moves, config.board_points - 1)
    openings = []
    for _ in range((games + 1) // 2):
        moves = rng.choice(config.board_points, size=count, replace=False)
        state = empty
        for move in moves:
            if state.is_terminal():
                break
            state = state.step(int(move))
        openings.append(state if not state.is_terminal() else empty)
    served = 0

    def new_game() -> Any:
        nonlocal served
        state = openings[(served // 2) % len(openings)]
        served += 1
        return state

    return new_game


def _arena(
    config: AlphaZeroConfig,
    net: Any,
    best_net: Any,
    rng: np.random.Generator,
    report: Callable[[str, int, int], None],
) -> dict[str, Any]:
    from treesearch.games.arena import AlphaZeroPlayer, MCTSPlayer, play_match

    sims = config.arena_simulations or config.selfplay.simulations
    c_puct = float(config.selfplay.c_puct)
    total = config.arena_games + config.mcts_games
    out: dict[str, Any] = {"win_rate_vs_best": None, "win_rate_vs_mcts": None}
    if total == 0:
        return out
    report("arena", 0, total)

    def player(network: Any, name: str) -> Any:
        return AlphaZeroPlayer(
            network, simulations=sims, device=config.device, c_puct=c_puct, name=name
        )

    matches = []
    if config.arena_games:
        matches.append(("best", player(best_net, "previous best"), config.arena_games))
    if config.mcts_games:
        yardstick = MCTSPlayer(simulations=config.mcts_simulations)
        matches.append(("mcts", yardstick, config.mcts_games))
    offset = 0
    for label, opponent, games in matches:

        def tick(update: Any, _offset: int = offset) -> None:
            report("arena", _offset + int(update.games_done), total)

        result = play_match(
            player(net, "new"),
            opponent,
            games=games,
            new_game=_arena_openings(config, games, rng),
            rng=rng,
            progress=tick,
        )
        offset += games
        report("arena", offset, total)
        out[f"win_rate_vs_{label}"] = float(result.a_win_rate)
        out[f"vs_{label}"] = [int(result.a_wins), int(result.b_wins), int(result.draws)]
    return out


def train(
    config: AlphaZeroConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = True,
    progress: ProgressFn | None = None,
) -> TrainSummary:
    """Run AlphaZero training for Gomoku, checkpointing into ``run_dir``.

    Args:
        config: the run's settings.
        run_dir: the run directory (created if missing). It ends up holding ``checkpoint/``,
            ``metrics.jsonl``, ``curves.png`` and ``best.safetensors``.
        resume: continue from ``run_dir/checkpoint`` when there is one (``config`` may then
            raise ``iterations`` and change training and arena settings, but not the board,
            the network's shape or the replay capacity). With ``resume=False`` a run
            directory that already holds a checkpoint is refused.
        progress: called with a :class:`TrainProgress` as the run advances.

    Returns:
        A :class:`TrainSummary`.

    Raises:
        ValueError: a checkpoint from an incompatible config, a damaged checkpoint, a
            checkpoint when ``resume=False``, or a CUDA device that torch does not see.
        RuntimeError: another process is training in ``run_dir``, or the loss diverged.
    """
    import torch

    if not isinstance(config, AlphaZeroConfig):
        raise TypeError(f"config must be an AlphaZeroConfig, got {type(config).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError("progress must be callable or None")
    device = _resolve_device(config.device)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _run_lock(run):
        _repair_checkpoint_swap(run)
        saved = _checkpoint_dir(run)
        if saved is not None and not resume:
            raise ValueError(
                f"{run} already holds a checkpoint; resume it (resume=True, the CLI's "
                "--resume) or choose a new run directory"
            )
        checkpoint = load_checkpoint(run, device=device) if saved is not None else None

        in_planes = int(_new_game(config)().planes().shape[0])
        if checkpoint is not None:
            config.check_resumable_from(checkpoint.config)
            net, best_net = checkpoint.net, checkpoint.best_net
            replay, rng, metrics = checkpoint.replay, checkpoint.rng, checkpoint.metrics
            counters: dict[str, Any] = {
                "iteration": checkpoint.iteration,
                "step": checkpoint.step,
                "total_games": checkpoint.total_games,
                "total_positions": checkpoint.total_positions,
                "best_iteration": checkpoint.best_iteration,
                "elapsed_seconds": checkpoint.elapsed_seconds,
            }
        else:
            net = _new_net(config, in_planes, device)
            best_net = _new_net(config, in_planes, device)
            best_net.load_state_dict(net.state_dict())
            replay = ReplayBuffer(config.replay_capacity, size=config.size, num_planes=in_planes)
            rng = np.random.default_rng(config.seed)
            metrics = []
            counters = {
                "iteration": 0,
                "step": 0,
                "total_games": 0,
                "total_positions": 0,
                "best_iteration": 0,
                "elapsed_seconds": 0.0,
            }
        optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        if checkpoint is not None:
            optimizer.load_state_dict(checkpoint.optimizer_state)
            for group in optimizer.param_groups:  # the config's lr wins on resume
                group["lr"] = config.lr
        start_iteration = int(counters["iteration"])
        metrics_path, best_path = run / METRICS, run / BEST
        # Make the run directory agree with the checkpoint: drop metrics lines of iterations
        # the checkpoint does not hold, and restore the best network it holds.
        _write_text(metrics_path, _metrics_text(metrics))
        if checkpoint is not None:
            _copy_file(checkpoint.path / "best.safetensors", best_path)
            _log.info("resuming %s from iteration %d", run, start_iteration)
            if progress is not None:
                progress(TrainProgress(start_iteration, config.iterations, "resume"))
        curves_path: Path | None = None
        plotted_at = time.perf_counter()
        drawn = 0  # metrics lines in the picture on disk

        for iteration in range(start_iteration + 1, config.iterations + 1):
            tick = time.perf_counter()

            def report(phase: str, done: int, total: int, _it: int = iteration) -> None:
                if progress is not None:
                    progress(TrainProgress(_it, config.iterations, phase, done, total))

            # 1. Self-play with the best network (the newest one without gating).
            records, play = _self_play(config, best_net, rng, report)
            planes, policies, values = _targets(records, config.board_points)
            replay.add(planes, policies, values)
            # 2. Learn from the replay buffer.
            train_tick = time.perf_counter()
            losses = _train_steps(config, net, optimizer, replay, rng, report)
            train_seconds = time.perf_counter() - train_tick
            # 3. Arena: against the previous best (gating) and the pure-MCTS yardstick.
            arena_tick = time.perf_counter()
            arena = _arena(config, net, best_net, rng, report)
            arena_seconds = time.perf_counter() - arena_tick
            threshold = config.gating_threshold
            accepted = threshold is None or (arena["win_rate_vs_best"] or 0.0) >= threshold
            if accepted:
                best_net.load_state_dict(net.state_dict())
                counters["best_iteration"] = iteration
            # 4. Record.
            positions = len(values)
            lengths = [len(r.moves) for r in records]
            outcomes = [float(r.outcome) for r in records]
            counters["iteration"] = iteration
            counters["step"] += config.train_steps_per_iteration if len(replay) else 0
            counters["total_games"] += len(records)
            counters["total_positions"] += positions
            seconds = time.perf_counter() - tick
            counters["elapsed_seconds"] = float(counters["elapsed_seconds"]) + seconds
            line = {
                "iteration": iteration,
                "step": counters["step"],
                **losses,
                **arena,
                "accepted": accepted,
                "best_iteration": counters["best_iteration"],
                "games": len(records),
                "positions": positions,
                "total_games": counters["total_games"],
                "total_positions": counters["total_positions"],
                "replay_size": len(replay),
                "mean_game_length": float(np.mean(lengths)) if lengths else 0.0,
                "first_player_wins": sum(o > 0 for o in outcomes),
                "second_player_wins": sum(o < 0 for o in outcomes),
                "draws": sum(o == 0 for o in outcomes),
                "resignations": play.resignations,
                "false_resignations": play.false_resignations,
                "selfplay_seconds": play.seconds,
                "games_per_second": len(records) / max(play.seconds, 1e-9),
                "positions_per_second": positions / max(play.seconds, 1e-9),
                "network_share": play.network_share,
                "train_seconds": train_seconds,
                "arena_seconds": arena_seconds,
                "seconds": seconds,
                "elapsed_seconds": counters["elapsed_seconds"],
            }
            metrics.append(line)
            # 5. Checkpoint first (it holds the metrics too), then the run directory's copies.
            if iteration % config.checkpoint_interval == 0 or iteration == config.iterations:
                report("checkpoint", 0, 1)
                _save_checkpoint(
                    run,
                    config=config,
                    counters=counters,
                    net=net,
                    best_net=best_net,
                    optimizer=optimizer,
                    replay=replay,
                    rng=rng,
                    metrics=metrics,
                )
                report("checkpoint", 1, 1)
                _copy_file(run / CHECKPOINT / "best.safetensors", best_path)
            _write_text(metrics_path, _metrics_text(metrics))
            if time.perf_counter() - plotted_at >= _PLOT_INTERVAL:
                curves_path = _try_plot(metrics, run / CURVES)
                plotted_at, drawn = time.perf_counter(), len(metrics)
            _log.info(
                "iteration %d/%d: loss %.3f, %d games, %.1f s",
                iteration,
                config.iterations,
                line["loss"],
                len(records),
                seconds,
            )
            if progress is not None:
                progress(TrainProgress(iteration, config.iterations, "iteration", 1, 1, line))

        if metrics and (drawn < len(metrics) or not (run / CURVES).exists()):
            curves_path = _try_plot(metrics, run / CURVES)
        elif metrics:
            curves_path = run / CURVES
        if not best_path.exists():  # nothing ran (already complete) and no checkpoint copy
            from treesearch.games.nets import save_net

            best_meta = _net_metadata(config, counters["best_iteration"])
            save_net(best_path, best_net, metadata=best_meta)
    return TrainSummary(
        run_dir=run,
        start_iteration=start_iteration,
        iteration=int(counters["iteration"]),
        step=int(counters["step"]),
        total_games=int(counters["total_games"]),
        total_positions=int(counters["total_positions"]),
        replay_size=len(replay),
        best_iteration=int(counters["best_iteration"]),
        metrics=tuple(metrics),
        seconds=time.perf_counter() - started,
        best_path=best_path,
        checkpoint_path=run / CHECKPOINT,
        metrics_path=metrics_path,
        curves_path=curves_path,
    )


def _try_plot(metrics: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    try:
        return plot_curves(metrics, path)
    except ImportError:
        _log.warning("matplotlib is not installed: %s not drawn", path)
    except (OSError, ValueError, RuntimeError) as exc:
        _log.warning("could not draw %s: %s", path, exc)
    return None
