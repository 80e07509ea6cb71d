"""Policy-value networks for board games: the AlphaZero residual CNN, a batched evaluator, and
safetensors checkpoints.

* :class:`PolicyValueNet`: f(s) -> (move logits, value in [-1, 1]) for the player to move, the
  residual tower of Silver et al., "Mastering the game of Go without human knowledge" (Nature
  2017), scaled down: a 3x3 convolutional stem, ``blocks`` residual blocks of two 3x3
  convolutions with batch normalisation (He et al., "Deep Residual Learning for Image
  Recognition", CVPR 2016), a policy head (1x1 convolution, linear layer to ``size * size``
  logits) and a value head (1x1 convolution, hidden linear layer, tanh scalar).
* :class:`NetEvaluator`: the batched :class:`~treesearch.interfaces.Evaluator` over such a net:
  one forward pass per call, priors renormalised over the legal moves only (a softmax over
  the legal logits, so illegal moves get exactly 0).
* :func:`save_net` / :func:`load_net`: safetensors checkpoints carrying the net's configuration
  in their metadata, written atomically.

This module imports torch at the top; ``import treesearch.games`` does not import it, so import
from here explicitly: ``from treesearch.games.nets import PolicyValueNet``.

Inputs are a state's ``planes()``: a float32 ``(in_planes, size, size)`` array (for
:class:`~treesearch.games.gomoku.Gomoku`: own stones, opponent stones, last move, side to
move). Actions are the flat cell indices ``row * size + col``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from treesearch.interfaces import Evaluation, State

__all__ = ["NetEvaluator", "PolicyValueNet", "load_net", "resolve_device", "save_net"]

# The safetensors metadata key holding the constructor arguments (JSON).
CONFIG_KEY = "treesearch.policy_value_net"
_FORMAT_KEY = "format"


def _positive_int(name: str, value: object, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    number = int(value)
    if number < 1 or (maximum is not None and number > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be >= 1{bound}, got {number}")
    return number


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`; ``ValueError`` for an unknown name or a CUDA
    device on a machine without CUDA."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} asked for CUDA, but torch.cuda.is_available() is False"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {device!r}")
    return resolved


class _ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the input, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + x)


class PolicyValueNet(nn.Module):
    """The AlphaZero residual policy-value network for a ``size x size`` board.

    Args:
        size: board side; the policy has ``size * size`` logits.
        in_planes: input feature planes per position (4 for Gomoku).
        blocks: residual blocks in the tower (0 gives the stem and heads alone).
        channels: convolution channels in the stem and tower.
        value_hidden: width of the value head's hidden layer.
        generator: the random source of the initial weights. ``None`` uses a generator seeded
            with 0, so two nets built alike start identical; torch's global RNG is never used.

    ``forward(x)`` takes ``(B, in_planes, size, size)`` float input and returns
    ``(policy_logits (B, size * size), value (B,))`` with the value in [-1, 1] (tanh) for the
    player to move. :attr:`config` holds the constructor arguments (without ``generator``);
    :attr:`metadata` holds the checkpoint metadata after :func:`load_net` (else empty).
    """

    def __init__(
        self,
        size: int,
        *,
        in_planes: int = 4,
        blocks: int = 4,
        channels: int = 64,
        value_hidden: int = 64,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        size = _positive_int("size", size, maximum=64)
        in_planes = _positive_int("in_planes", in_planes)
        if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)):
            raise TypeError(f"blocks must be an int, got {type(blocks).__name__} {blocks!r}")
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        blocks = int(blocks)
        channels = _positive_int("channels", channels)
        value_hidden = _positive_int("value_hidden", value_hidden)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.size = size
        self.in_planes = in_planes
        self.config: dict[str, int] = {
            "size": size,
            "in_planes": in_planes,
            "blocks": blocks,
            "channels": channels,
            "value_hidden": value_hidden,
        }
        self.metadata: dict[str, str] = {}
        cells = size * size
        # Built on the meta device and initialised below from ``generator``, so that building
        # a net never draws from torch's global random state.
        with torch.device("meta"):
            self.stem = nn.Sequential(
                nn.Conv2d(in_planes, channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            )
            self.tower = nn.Sequential(*(_ResidualBlock(channels) for _ in range(blocks)))
            self.policy_conv = nn.Sequential(
                nn.Conv2d(channels, 2, 1, bias=False), nn.BatchNorm2d(2), nn.ReLU()
            )
            self.policy_fc = nn.Linear(2 * cells, cells)
            self.value_conv = nn.Sequential(
                nn.Conv2d(channels, 1, 1, bias=False), nn.BatchNorm2d(1), nn.ReLU()
            )
            self.value_fc1 = nn.Linear(cells, value_hidden)
            self.value_fc2 = nn.Linear(value_hidden, 1)
        self.to_empty(device="cpu")
        self._initialise(generator if generator is not None else torch.Generator().manual_seed(0))

    def _initialise(self, generator: torch.Generator) -> None:
        """torch's default initialisation (Kaiming-uniform weights, uniform biases in
        +-1/sqrt(fan_in)), drawn from ``generator``; batch norm starts as the identity."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                    if module.bias is not None:
                        fan_in = module.weight[0].numel()
                        bound = 1.0 / math.sqrt(fan_in)
                        nn.init.uniform_(module.bias, -bound, bound, generator=generator)
                elif isinstance(module, nn.BatchNorm2d):
                    module.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"PolicyValueNet input must be a torch.Tensor, got {type(x).__name__}")
        expected = (self.in_planes, self.size, self.size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PolicyValueNet input must have shape (B, {', '.join(map(str, expected))}), "
                f"got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            x = x.float()
        h = self.tower(self.stem(x))
        logits = self.policy_fc(self.policy_conv(h).flatten(1))
        v = torch.relu(self.value_fc1(self.value_conv(h).flatten(1)))
        value = torch.tanh(self.value_fc2(v)).squeeze(1)
        return logits, value


def _folded_copy(net: PolicyValueNet) -> PolicyValueNet:
    """An eval-mode deep copy of ``net`` whose batch norms are folded into the convolutions
    before them (``y = BN(conv(x))`` becomes one convolution with a bias)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    copy = deepcopy(net).eval()
    with torch.no_grad():
        for seq in (copy.stem, copy.policy_conv, copy.value_conv):
            conv, norm = seq[0], seq[1]
            assert isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d)
            seq[0] = fuse_conv_bn_eval(conv, norm)
            seq[1] = nn.Identity()
        for block in copy.tower:
            assert isinstance(block, _ResidualBlock)
            block.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
            block.bn1 = nn.Identity()  # type: ignore[assignment]
            block.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
            block.bn2 = nn.Identity()  # type: ignore[assignment]
    for param in copy.parameters():
        param.requires_grad_(False)
    return copy


class NetEvaluator:
    """A batched :class:`~treesearch.interfaces.Evaluator` over a :class:`PolicyValueNet`.

    ``evaluate(states, rng=...)`` stacks ``state.planes()``, runs one forward pass under
    ``torch.inference_mode()`` through an eval-mode copy of the net with batch norm folded into
    the convolutions (rebuilt whenever the net's weights change; the net's own mode is left
    alone), and returns per state the softmax of the logits of ``state.legal_actions()``
    (in that order; illegal moves are never given mass) and the value for ``state.to_play``.

    Args:
        net: the network; it is moved to ``device`` (in place, as ``nn.Module.to`` does).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:n"``.

    Counters (reset with :meth:`reset_counters`): ``calls`` (evaluate calls with at least one
    state), ``positions`` (states evaluated), ``seconds`` (time in the network: input transfer,
    forward pass, output transfer).
    """

    def __init__(self, net: PolicyValueNet, *, device: str | torch.device = "cpu") -> None:
        if not isinstance(net, PolicyValueNet):
            raise TypeError(f"net must be a PolicyValueNet, got {type(net).__name__}")
        self.device = resolve_device(device)
        self.net = net.to(self.device)
        self.size = net.size
        self.num_actions = net.size * net.size
        self._plane_shape = (net.in_planes, net.size, net.size)
        self.calls = 0
        self.positions = 0
        self.seconds = 0.0
        self._inference: PolicyValueNet | None = None
        self._inference_version: tuple[tuple[int, int], ...] = ()

    def refresh(self) -> None:
        """Rebuild the inference copy at the next call (after editing weights via ``.data``)."""
        self._inference = None

    def reset_counters(self) -> None:
        self.calls = 0
        self.positions = 0
        self.seconds = 0.0

    def evaluate(self, states: Sequence[State], *, rng: np.random.Generator) -> list[Evaluation]:
        if isinstance(states, (str, bytes)) or not isinstance(states, Sequence):
            raise TypeError(f"states must be a sequence of states, got {type(states).__name__}")
        if not states:
            return []
        planes = self._stack_planes(states)
        legal = [self._legal_indices(state, i) for i, state in enumerate(states)]
        start = time.perf_counter()
        net = self._inference_net()
        with torch.inference_mode():
            x = torch.from_numpy(planes).to(self.device, non_blocking=True)
            logits_t, values_t = net(x)
            logits = logits_t.to(dtype=torch.float64).cpu().numpy()
            values = values_t.to(dtype=torch.float64).cpu().numpy()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        self.positions += len(states)
        out = []
        for row, moves, value in zip(logits, legal, values, strict=True):
            if len(moves) == 0:
                out.append(Evaluation(np.zeros(0), float(value)))
                continue
            # Softmax over the legal logits only: the shift by their maximum keeps exp() in
            # range, and at least one term is exp(0) = 1, so the sum never underflows to 0.
            chosen = row[moves]
            weights = np.exp(chosen - chosen.max())
            out.append(Evaluation(weights / weights.sum(), float(value)))
        return out

    def _inference_net(self) -> PolicyValueNet:
        """An eval-mode copy of the net with every batch norm folded into its convolution.

        Folding removes a third of the work of a small net's forward pass, and evaluating a
        copy leaves the training net's mode alone. The copy is rebuilt whenever a parameter or
        buffer of the net changed through torch (an optimiser step, ``load_state_dict``, running
        statistics updated by a training forward pass, in-place ops under ``no_grad``). Writes
        through ``tensor.data`` bypass torch's version counters: call :meth:`refresh` after them.
        """
        version = tuple(
            (t._version, t.data_ptr()) for t in self.net.state_dict(keep_vars=True).values()
        )
        if self._inference is None or version != self._inference_version:
            self._inference = _folded_copy(self.net)
            self._inference_version = version
        return self._inference

    def _stack_planes(self, states: Sequence[State]) -> np.ndarray:
        batch = np.empty((len(states), *self._plane_shape), dtype=np.float32)
        for i, state in enumerate(states):
            method = getattr(state, "planes", None)
            if method is None:
                raise TypeError(
                    f"state {i} ({type(state).__name__}) has no planes() method; NetEvaluator "
                    "needs states that encode themselves as (planes, size, size) arrays"
                )
            planes = np.asarray(method())
            if planes.shape != self._plane_shape:
                raise ValueError(
                    f"state {i} ({type(state).__name__}) gives planes of shape {planes.shape}, "
                    f"but the net expects {self._plane_shape} (board size {self.size}, "
                    f"{self._plane_shape[0]} planes)"
                )
            batch[i] = planes
        return batch

    def _legal_indices(self, state: State, index: int) -> np.ndarray:
        actions = state.legal_actions()
        moves = np.asarray(actions)
        if len(moves) == 0:
            return np.zeros(0, dtype=np.int64)
        if moves.ndim != 1 or moves.dtype.kind not in "iu":
            bad = next(
                (a for a in actions if isinstance(a, bool) or not isinstance(a, (int, np.integer))),
                actions,
            )
            raise TypeError(
                f"state {index} ({type(state).__name__}) has a legal action {bad!r} of type "
                f"{type(bad).__name__}; NetEvaluator needs int actions row * size + col"
            )
        if moves.min() < 0 or moves.max() >= self.num_actions:
            raise ValueError(
                f"state {index} ({type(state).__name__}) has legal actions outside "
                f"[0, {self.num_actions}) for board size {self.size}: min {moves.min()}, "
                f"max {moves.max()}"
            )
        return moves.astype(np.int64, copy=False)


def save_net(
    path: str | os.PathLike[str],
    net: PolicyValueNet,
    *,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``net``'s weights and configuration to a safetensors file, atomically.

    ``metadata`` (string keys and values, e.g. ``{"game": "gomoku", "k": "5"}``) is stored
    beside the configuration and comes back as ``net.metadata`` from :func:`load_net`. The file
    is written to a temporary file in the same folder and renamed over ``path``, so a reader
    never sees a partial file. Returns the path.
    """
    if not isinstance(net, PolicyValueNet):
        raise TypeError(f"net must be a PolicyValueNet, got {type(net).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    extra = {} if metadata is None else metadata
    if not isinstance(extra, dict):
        raise TypeError(f"metadata must be a dict[str, str], got {type(extra).__name__}")
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata must map str to str; got {key!r}: {value!r} "
                f"({type(key).__name__}: {type(value).__name__})"
            )
        if key in (CONFIG_KEY, _FORMAT_KEY):
            raise ValueError(f"metadata key {key!r} is reserved")
    header = {**extra, CONFIG_KEY: json.dumps(net.config, sort_keys=True), _FORMAT_KEY: "pt"}
    tensors = {name: t.detach().cpu().contiguous() for name, t in net.state_dict().items()}
    payload = safetensors_save(tensors, metadata=header)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_net(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    expected_size: int | None = None,
) -> PolicyValueNet:
    """Read a net written by :func:`save_net`, in eval mode on ``device``.

    ``net.metadata`` holds the file's metadata (the caller's keys and the configuration).
    Raises ``FileNotFoundError`` for a missing file, and ``ValueError`` for a file that is not
    a readable safetensors checkpoint of a :class:`PolicyValueNet`, and for a net of another
    board size than ``expected_size`` when that is given.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if expected_size is not None:
        expected_size = _positive_int("expected_size", expected_size)
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no network checkpoint at {str(target)!r}")
    resolved = resolve_device(device)
    try:
        with safe_open(str(target), framework="pt", device="cpu") as fh:
            header: dict[str, str] = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ValueError(
            f"{str(target)!r} is not a readable safetensors file ({type(exc).__name__}: {exc})"
        ) from None
    if CONFIG_KEY not in header:
        raise ValueError(
            f"{str(target)!r} is a safetensors file but not a PolicyValueNet checkpoint "
            f"(no {CONFIG_KEY!r} metadata); write checkpoints with save_net"
        )
    try:
        config = json.loads(header[CONFIG_KEY])
        if not isinstance(config, dict):
            raise ValueError("the configuration is not a JSON object")
        net = PolicyValueNet(**config)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{str(target)!r} has a bad network configuration: {exc}") from None
    if expected_size is not None and net.size != expected_size:
        raise ValueError(
            f"{str(target)!r} holds a net for a {net.size}x{net.size} board, "
            f"expected {expected_size}x{expected_size}"
        )
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"{str(target)!r}: weights do not match the stored configuration: {exc}"
        ) from None
    net.metadata = header
    net.to(resolved)
    net.eval()
    return net
