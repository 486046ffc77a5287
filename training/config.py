"""Training configuration: one validated dataclass, YAML files, ``key=value`` overrides.

Every key is declared here with its type; a YAML file or an override that names an
unknown key, or gives a value of the wrong type, is an error that names the key (no
silent defaults). The dataclass defaults *are* the embedded default config: a DNC on the
T-maze (``training/configs/tmaze_dnc.yaml`` holds the same values, and a test keeps the
two equal).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dnc_core import CORES

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the key."""


@dataclass
class TrainConfig:
    """Every training key. The field defaults are A2C's embedded default; build another
    trainer's with :meth:`default` (``TrainConfig.default("ppo")``), a file with
    ``algo:`` in it, or :func:`resolve` (``TrainConfig(algo="ppo")`` alone keeps A2C's
    hyperparameters)."""

    # Which trainer the config is for: "a2c" (python -m training.a2c) or "ppo"
    # (python -m training.ppo). Each has its own embedded default (ALGO_DEFAULTS).
    algo: str = "a2c"
    # What to train
    env: str = "dnc/TMaze-v0"
    # Corridor lengths drawn per episode from [5, 30], so the policy cannot count steps;
    # evaluate beyond them with `training.evaluate --env-kwargs length=300`. A wall bump
    # costs 0.1 (a step 0.01): the policy learns to walk the corridor straight, so its
    # deterministic version does too (see sim/tmaze.py).
    env_kwargs: dict = field(default_factory=lambda: {"length": [5, 30], "bump_penalty": 0.1})
    core: str = "dnc"
    core_config: dict = field(default_factory=lambda: {
        "hidden_size": 64, "memory_slots": 16, "word_size": 16, "read_heads": 1})
    head_hidden: int = 0
    # How many tanh layers of head_hidden units each head has (used when head_hidden > 0;
    # sb3-contrib RecurrentPPO's default network has 2).
    head_layers: int = 1
    # A second core, of the same kind and core_config, that only the critic head reads
    # (sb3-contrib RecurrentPPO's default critic LSTM): the value loss then no longer
    # shapes the actor's memory; it doubles the core's cost in training and in the
    # exported tick. Off: one core feeds both heads. See docs/TRAINING.md.
    separate_critic: bool = False
    # Rollouts and the gradient window
    total_steps: int = 1_500_000
    # A2C makes one gradient step per rollout: 4 envs x 32 steps (128 env steps an
    # update) reached rolling success 0.9 on the corridor of 10 in 1.6k-2.6k episodes in
    # 5/5 seeds where 16 envs needed 10.9k-17.0k in 3/5 (docs/results/issue11.md). PPO
    # keeps 16 envs (ALGO_DEFAULTS).
    num_envs: int = 4
    rollout_steps: int = 32
    # Truncated-BPTT window: each env's rollout is replayed in sequences of `bptt`
    # steps, each from the state the rollout really had at its start (stored); the
    # reset mask cuts the gradient at every episode start. 0 = the whole rollout.
    # Must divide rollout_steps. See docs/TRAINING.md.
    bptt: int = 0
    # Context: steps replayed, without a loss of their own, before each gradient window,
    # from the stored state at the context's start (those before the rollout are the
    # previous rollout's last steps): a window's gradient then reaches observations up
    # to this many steps before it, e.g. a cue written in the previous rollout.
    # A multiple of the window, at most rollout_steps; 0 = off. See docs/TRAINING.md.
    bptt_context: int = 0
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 2e-3  # A2C's; PPO's is 1e-3 (ALGO_DEFAULTS)
    lr_schedule: str = "linear"  # "linear" (to 0 at total_steps) or "constant"
    adam_eps: float = 1e-5
    # "adam" (eps adam_eps), or "rmsprop": RMSProp as deepmind/dnc's train.py uses it
    # (TensorFlow's RMSPropOptimizer: decay 0.9, epsilon 1e-10, no momentum)
    optimizer: str = "adam"
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.5
    normalize_obs: bool = True
    # Divide rewards by the running std of the discounted return (gymnasium's
    # NormalizeReward, SB3's VecNormalize): for envs of large returns (CartPolePO's 500),
    # whose value loss would otherwise drown the policy's. See docs/TRAINING.md.
    normalize_rewards: bool = False
    # Per-update (A2C) or per-minibatch (PPO) advantage normalisation: off for both
    # trainers, whose defaults learned faster and more stably without it (issue11.md)
    normalize_advantages: bool = False
    # PPO only (python -m training.ppo; A2C makes one gradient step per rollout)
    update_epochs: int = 10
    num_minibatches: int = 4  # minibatches of whole sequences per epoch
    clip_coef: float = 0.2
    clip_schedule: str = "constant"  # "constant" or "linear" (to 0 with the lr)
    clip_value: float = 0.0  # value clipping range around the old value; 0 = off
    target_kl: float = 0.0  # stop an update's epochs once approx KL exceeds it; 0 = off
    # Stop early once the rolling success rate over `success_window` episodes reaches
    # this (0 disables early stopping).
    stop_at_success: float = 0.98
    success_window: int = 100
    # Finished episodes in the window before stop_at_success may stop a run (capped at
    # success_window, as before; training.compare --stop-at-threshold sets a full window)
    stop_min_episodes: int = 20
    # Machinery
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    vector_env: str = "sync"  # sync | async
    threads: int = 2  # torch intra-op threads (CPU)
    # torch.compile the core's step: "auto" compiles where it pays (compile_enabled: the
    # DNC and NTM cores on the CPU, runs of >= COMPILE_MIN_STEPS env steps, a C++
    # compiler present); true / false force it. Faster, at a one-off compile cost.
    compile: bool | str = "auto"
    # Steps of a replay's unroll compiled as one graph when the step is compiled
    # (RecurrentCore.compile_step's chunk): "auto" takes COMPILE_CHUNK in runs of >=
    # CHUNK_MIN_STEPS env steps, else 1 (the step alone); an integer >= 1 forces it.
    compile_chunk: int | str = "auto"
    run_dir: str = "runs"
    log_every: int = 10  # updates between log lines / TensorBoard points
    checkpoint_every: int = 100_000  # env steps between checkpoints (and one at the end)

    CHOICES = {"algo": ("a2c", "ppo"), "lr_schedule": ("linear", "constant"),
               "optimizer": ("adam", "rmsprop"),
               "clip_schedule": ("linear", "constant"), "device": ("auto", "cpu", "cuda"),
               "vector_env": ("sync", "async"), "core": tuple(CORES)}

    def validate(self) -> "TrainConfig":
        """Check types, ranges and choices; raise :class:`ConfigError` naming the key."""
        for f in dataclasses.fields(self):
            if f.name == "compile":
                if not (isinstance(self.compile, bool) or self.compile == "auto"):
                    raise ConfigError(f"compile: expected true, false or \"auto\", got "
                                      f"{self.compile!r}")
                continue
            if f.name == "compile_chunk":
                c = self.compile_chunk
                if not ((isinstance(c, int) and not isinstance(c, bool) and c >= 1)
                        or c == "auto"):
                    raise ConfigError(f"compile_chunk: expected an integer >= 1 or \"auto\", "
                                      f"got {c!r}")
                continue
            _check_type(f.name, getattr(self, f.name), f.type)
        for key, choices in self.CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {list(choices)}")
        for key in ("total_steps", "num_envs", "rollout_steps", "threads", "log_every",
                    "checkpoint_every", "success_window", "update_epochs", "num_minibatches",
                    "stop_min_episodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("gamma", "gae_lambda", "stop_at_success"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)}")
        for f in dataclasses.fields(self):
            if f.type == "float":
                _check_float(f.name, getattr(self, f.name))
        for key in ("lr", "adam_eps", "max_grad_norm", "clip_coef"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("value_coef", "entropy_coef", "head_hidden", "bptt", "bptt_context",
                    "clip_value", "target_kl"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.head_layers < 1:
            raise ConfigError(f"head_layers: must be >= 1, got {self.head_layers}")
        if self.head_layers != 1 and self.head_hidden == 0:
            raise ConfigError(f"head_layers: {self.head_layers} needs head_hidden > 0 (the "
                              "width of the layers); with head_hidden 0 the heads are linear")
        if not 0 <= self.seed <= MAX_SEED:  # what torch and numpy seeding take
            raise ConfigError(f"seed: must be an integer in [0, 2**32 - 1 = {MAX_SEED}], "
                              f"got {self.seed}")
        if self.rollout_steps % self.window != 0:
            raise ConfigError(f"bptt: {self.bptt} must divide rollout_steps "
                              f"({self.rollout_steps}); 0 means the whole rollout")
        if self.bptt_context % self.window or self.bptt_context > self.rollout_steps:
            raise ConfigError(f"bptt_context: {self.bptt_context} must be a multiple of the "
                              f"gradient window ({self.window}: bptt, or rollout_steps when "
                              f"bptt is 0) and at most rollout_steps ({self.rollout_steps})")
        if self.algo == "ppo" and self.num_minibatches > self.num_envs * self.sequences_per_env:
            raise ConfigError(f"num_minibatches: {self.num_minibatches} is more than the "
                              f"{self.num_envs * self.sequences_per_env} sequences of a rollout "
                              f"(num_envs x rollout_steps / bptt)")
        self._validate_core_config()
        _check_env_id(self.env)
        _check_env_kwargs(self.env, self.env_kwargs)
        _check_finite_values("env_kwargs", self.env_kwargs)
        return self

    def _validate_core_config(self) -> None:
        params = inspect.signature(CORES[self.core].__init__).parameters
        allowed = [p for p in params if p not in ("self", "input_size")]
        for key, value in self.core_config.items():
            if key not in allowed:
                raise ConfigError(f"core_config.{key}: unknown option for core {self.core!r}"
                                  f"{suggest(key, allowed)}; expected one of {allowed}")
            default = params[key].default
            if default is not inspect.Parameter.empty:
                want = float if isinstance(default, float) else type(default)
                if want is float and isinstance(value, int) and not isinstance(value, bool):
                    _check_float(f"core_config.{key}", value)
                    continue
                if isinstance(value, bool) != (want is bool) or not isinstance(value, want):
                    raise ConfigError(f"core_config.{key}: expected {want.__name__}, "
                                      f"got {type(value).__name__} {value!r}")
        _check_finite_values("core_config", self.core_config)
        # The core checks its own ranges (sizes >= 1, read_top_k <= memory_slots, ...):
        # build it on the meta device (no memory, no weights drawn) to ask it now.
        import torch

        try:
            with torch.device("meta"):
                CORES[self.core](input_size=1, **self.core_config)
        except (ValueError, TypeError) as e:
            message = " ".join(str(e).split())
            name = message.split(" ", 1)[0]
            if name in self.core_config:  # "hidden_size must be ...": name the key
                raise ConfigError(f"core_config.{name}: {message.split(' ', 1)[1]}") from None
            raise ConfigError(f"core_config: core {self.core!r} refuses "
                              f"{self.core_config}: {message}") from None

    @property
    def window(self) -> int:
        """The gradient window in steps (``bptt``, or the whole rollout when 0)."""
        return self.bptt or self.rollout_steps

    @property
    def sequences_per_env(self) -> int:
        return self.rollout_steps // self.window

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def default(cls, algo: str = "a2c") -> "TrainConfig":
        """The embedded default of a trainer (``training/configs/tmaze_dnc.yaml`` for
        A2C, ``ppo_tmaze_dnc.yaml`` for PPO hold the same values)."""
        if algo not in ALGO_DEFAULTS:
            raise ConfigError(f"algo: {algo!r} is not one of {list(ALGO_DEFAULTS)}")
        return dataclasses.replace(cls(), algo=algo, **ALGO_DEFAULTS[algo])

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values, "
                              f"got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(f"{source}: unknown key {key!r}{suggest(key, names)}")
        data = {k: _yaml11_float(v) if _FIELD_TYPES[k] == "float" else v for k, v in data.items()}
        algo = data.get("algo", cls.algo)
        base = cls.default(algo) if algo in ALGO_DEFAULTS else cls()  # validate() says why
        cfg = dataclasses.replace(base, **data)
        # Options of the default core or env do not carry over to another one.
        if "core" in data and "core_config" not in data and cfg.core != cls.core:
            cfg.core_config = {}
        if "env" in data and "env_kwargs" not in data and cfg.env != cls.env:
            cfg.env_kwargs = {}
        return cfg.validate()

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a YAML file (``yaml.safe_load``) over the defaults."""
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {str(path)!r} is a folder; expected a YAML file")
        if not path.exists():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(path)!r} is not a YAML file: it is not "
                              f"UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                              f"{e.start})") from None
        except OSError as e:
            raise ConfigError(f"config file {str(path)!r} could not be read: "
                              f"{e.strerror or e}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: "
                              f"{' '.join(str(e).split())}") from None
        if data is None:  # an empty file (or only comments): the defaults
            data = {}
        if not isinstance(data, dict):  # `0`, `false`, `[]`, a bare string...
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of keys to "
                              f"values, got {type(data).__name__} {data!r}")
        return cls.from_dict(data, source=str(path))

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (values parsed as YAML scalars; ``a.b=v`` sets a
        key inside a dict field such as ``core_config.hidden_size=128``)."""
        data = self.to_dict()
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value")
            key, raw = item.split("=", 1)
            key = key.strip()
            try:
                value = _yaml11_float(yaml.safe_load(raw)) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            if "." in key:
                top, sub = key.split(".", 1)
                if top not in data or not isinstance(data[top], dict):
                    raise ConfigError(f"override {key!r}: {top!r} is not a dict-valued key "
                                      f"(dict keys: env_kwargs, core_config)")
                data[top] = {**data[top], sub: value}
            else:
                if key not in data:
                    raise ConfigError(f"override: unknown key {key!r}{suggest(key, list(data))}")
                if key == "core" and value != data["core"]:
                    data["core_config"] = {}  # the other core's options do not apply
                if key == "env" and value != data["env"]:
                    data["env_kwargs"] = {}  # nor do the other env's
                data[key] = value
        return type(self).from_dict(data, source="override")


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}

# Where a trainer's embedded default differs from the dataclass defaults (A2C's).
# PPO's are the RL-Zoo settings for recurrent PPO on POMDPs (16 envs x 32 steps, 20
# epochs of 2 minibatches, gamma = lambda = 0.98, no entropy bonus), except that the
# advantages are not normalised per minibatch: once a task is solved, normalising blows
# the remaining noise up to unit scale and the policy falls back (docs/TRAINING.md,
# docs/results/issue11.md). 20 epochs, not 10: with 10, POPGym's RepeatPreviousEasy
# reached about half of RecurrentPPO's return in 200k steps.
# PPO's DNC de-allocates (Csordás & Schmidhuber 2019, §3.2: freed memory is erased): in
# issue 12's length study (trained on corridors of 5-30) every de-allocating seed kept
# 100% success at a corridor of 1000 (5/5 alone, 5/5 with masking and sharpness too;
# a later rerun of de-allocation alone 4/5), against 2/5 for the 2016 DNC
# (docs/results/issue12.md).
ALGO_DEFAULTS: dict[str, dict[str, Any]] = {
    "a2c": {},
    "ppo": {"num_envs": 16, "lr": 1e-3, "update_epochs": 20, "num_minibatches": 2,
            "gamma": 0.98, "gae_lambda": 0.98, "entropy_coef": 0.0,
            "core_config": {"hidden_size": 64, "memory_slots": 16, "word_size": 16,
                            "read_heads": 1, "deallocation": True}},
}


# compile: "auto" compiles the core step of these cores on the CPU for runs of at least
# this many env steps: there it pays (training.bench, PPO at one thread: the DNC's cost
# per env step 4.2x the LSTM's eager, 1.75x compiled; docs/BENCHMARKS.md), while the
# one-off compile (tens of seconds) outweighs the gain on short runs. The LSTM and GRU
# are left eager (their steps are a few fused ops already).
COMPILE_MIN_STEPS = 50_000
COMPILED_CORES = ("dnc", "ntm")


def compile_enabled(cfg: TrainConfig, device_type: str) -> tuple[bool, str]:
    """Whether a run compiles its core's step, and why: ``cfg.compile`` when it is a
    bool, else (``"auto"``) on exactly for a core of :data:`COMPILED_CORES` on the CPU
    with ``total_steps >= COMPILE_MIN_STEPS`` where inductor's C++ compiler (``$CXX``,
    else ``g++``) is on the PATH."""
    if isinstance(cfg.compile, bool):
        return cfg.compile, f"compile: {str(cfg.compile).lower()}"
    if cfg.core not in COMPILED_CORES:
        return False, f"compile: auto, off for the {cfg.core} core"
    if device_type != "cpu":
        return False, f"compile: auto, off on {device_type} (measured on the CPU only)"
    if cfg.total_steps < COMPILE_MIN_STEPS:
        return False, f"compile: auto, off below {COMPILE_MIN_STEPS:,} total_steps"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return False, f"compile: auto, off: no C++ compiler {cxx!r} on the PATH"
    return True, (f"compile: auto, on for the {cfg.core} core on the CPU "
                  f"(total_steps >= {COMPILE_MIN_STEPS:,})")


# compile_chunk: "auto" compiles this many steps of the replay as one graph in runs of at
# least CHUNK_MIN_STEPS env steps. Measured alone on this 2-core machine (one thread;
# docs/TRAINING.md, Speed): the replay 1.42x the per-step compiled one at 8, the PPO loop
# 1.46x, for a one-off compile of about two minutes, which a run repays after about 200k
# env steps; the bar leaves a margin for a slower compile on a loaded machine.
COMPILE_CHUNK, CHUNK_MIN_STEPS = 8, 500_000


def compile_chunk(cfg: TrainConfig, device_type: str = "cpu") -> tuple[int, str]:
    """How many replay steps a compiled run compiles as one graph, and why: an integer
    ``cfg.compile_chunk`` as it is, else (``"auto"``) :data:`COMPILE_CHUNK` on the CPU in
    runs of ``total_steps >= CHUNK_MIN_STEPS`` and 1 otherwise."""
    if cfg.compile_chunk != "auto":
        return int(cfg.compile_chunk), f"compile_chunk: {cfg.compile_chunk}"
    if device_type != "cpu":
        return 1, f"compile_chunk: auto, 1 on {device_type} (measured on the CPU only)"
    if cfg.total_steps >= CHUNK_MIN_STEPS:
        return COMPILE_CHUNK, (f"compile_chunk: auto, {COMPILE_CHUNK} steps per graph "
                               f"(total_steps >= {CHUNK_MIN_STEPS:,})")
    return 1, f"compile_chunk: auto, 1 (below {CHUNK_MIN_STEPS:,} total_steps)"


def _yaml11_float(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``3e-4`` as a string; take it as the float it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_type(name: str, value: Any, annotation: str) -> None:
    want = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict}[annotation]
    if isinstance(value, bool) and annotation != "bool":
        raise ConfigError(f"{name}: expected {annotation}, got bool {value!r}")
    if not isinstance(value, want):
        raise ConfigError(f"{name}: expected {annotation}, got {type(value).__name__} {value!r}")


# Training runs in float32: a float beyond its largest (3.4028234663852886e38; 3.4028235e38
# is already beyond) overflows in the first tensor made of it (torch: "value cannot be
# converted to type float without overflow").
FLOAT32_MAX = 3.4028234663852886e38
MAX_SEED = 2**32 - 1


def _check_float(name: str, value: Any) -> None:
    """``value`` (a float, or an int given for one) is finite and within float32's
    range; the error names the key."""
    try:
        x = float(value)
    except OverflowError:  # an int beyond any float
        x = math.inf
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if not abs(x) <= FLOAT32_MAX:
        raise ConfigError(f"{name}: must be a finite number within float32 range "
                          f"(|x| <= {FLOAT32_MAX!r}, float32's largest), got {value!r}")


def _check_finite_values(name: str, value: Any) -> None:
    """Every float inside ``value`` (a dict-valued key, lists and dicts nested in it) is
    finite and within float32 range; the error names the key (``core_config.clip``,
    ``env_kwargs.length[1]``)."""
    if isinstance(value, float):
        _check_float(name, value)
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite_values(f"{name}.{k}", v)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite_values(f"{name}[{i}]", v)


def _check_env_id(env_id: str) -> None:
    import gymnasium

    import sim  # noqa: F401  (registers the dnc/ envs)

    try:
        from training.envs import env_spec
        env_spec(env_id)
    except gymnasium.error.Error as e:
        raise ConfigError(f"env: {env_id!r} is not a registered Gymnasium id ({e})") from None


def _check_env_kwargs(env_id: str, kwargs: dict) -> None:
    """Every key of ``env_kwargs`` is one the env's constructor takes (values are the
    env's to check when it is made)."""
    from training.envs import check_env_kwargs

    try:
        check_env_kwargs(env_id, kwargs, "env_kwargs")
    except ValueError as e:
        raise ConfigError(str(e)) from None


def suggest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve(config: str | None = None, overrides: list[str] | None = None,
            algo: str | None = None, **explicit: Any) -> TrainConfig:
    """The trainer's default (``algo``; A2C's when None), then the YAML file, then
    ``--set`` overrides, then explicit CLI flags (``env``, ``core``, ``seed``,
    ``device``, ``total_steps``) that are not None. A file written for one trainer is
    refused by the other (its hyperparameters were chosen for it)."""
    if config:
        cfg = TrainConfig.load(config)
        if algo is not None and cfg.algo != algo:
            raise ConfigError(f"{config}: algo is {cfg.algo!r}, but this is the {algo} "
                              f"trainer (set algo: {algo} in the file, or use "
                              f"python -m training.{cfg.algo})")
    else:
        cfg = TrainConfig.default(algo or "a2c").validate()
    flags = [f"{k}={v}" for k, v in explicit.items() if v is not None]
    # --env / --core first, so that --set env_kwargs.x / core_config.x given with them
    # apply to the new env or core instead of being dropped by the switch; then the
    # --set items, then every flag (a flag wins over a --set of the same key).
    first = [f for f in flags if f.split("=", 1)[0] in ("env", "core")]
    sets = first + list(overrides or []) + flags
    return cfg.override(sets) if sets else cfg
