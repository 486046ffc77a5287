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
    # What to train
    env: str = "dnc/TMaze-v0"
    # A wall bump costs 0.1 (a step 0.01): the policy learns to walk the corridor
    # straight, so its deterministic version does too (see sim/tmaze.py).
    env_kwargs: dict = field(default_factory=lambda: {"length": 10, "bump_penalty": 0.1})
    core: str = "dnc"
    core_config: dict = field(default_factory=lambda: {
        "hidden_size": 64, "memory_slots": 16, "word_size": 16, "read_heads": 1})
    head_hidden: int = 0
    # A2C
    total_steps: int = 1_500_000
    num_envs: int = 16
    rollout_steps: int = 32
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 1e-3
    lr_schedule: str = "linear"  # "linear" (to 0 at total_steps) or "constant"
    adam_eps: float = 1e-5
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.5
    normalize_obs: bool = True
    normalize_advantages: bool = True
    # Stop early once the rolling success rate over `success_window` episodes reaches
    # this (0 disables early stopping).
    stop_at_success: float = 0.98
    success_window: int = 100
    # Machinery
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    vector_env: str = "sync"  # sync | async
    threads: int = 2  # torch intra-op threads (CPU)
    compile: bool = False  # torch.compile the core's step (faster, one-off compile cost)
    run_dir: str = "runs"
    log_every: int = 10  # updates between log lines / TensorBoard points
    checkpoint_every: int = 100_000  # env steps between checkpoints (and one at the end)

    CHOICES = {"lr_schedule": ("linear", "constant"), "device": ("auto", "cpu", "cuda"),
               "vector_env": ("sync", "async"), "core": tuple(CORES)}

    def validate(self) -> "TrainConfig":
        """Check types, ranges and choices; raise :class:`ConfigError` naming the key."""
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        for key, choices in self.CHOICES.items():
            if getattr(self, key) not in choices:
                raise ConfigError(f"{key}: {getattr(self, key)!r} is not one of {list(choices)}")
        for key in ("total_steps", "num_envs", "rollout_steps", "threads", "log_every",
                    "checkpoint_every", "success_window"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("gamma", "gae_lambda", "stop_at_success"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)}")
        for key in ("lr", "adam_eps", "max_grad_norm"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("value_coef", "entropy_coef", "head_hidden"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        self._validate_core_config()
        _check_env_id(self.env)
        return self

    def _validate_core_config(self) -> None:
        params = inspect.signature(CORES[self.core].__init__).parameters
        allowed = [p for p in params if p not in ("self", "input_size")]
        for key, value in self.core_config.items():
            if key not in allowed:
                raise ConfigError(f"core_config.{key}: unknown option for core {self.core!r}"
                                  f"{_suggest(key, allowed)}; expected one of {allowed}")
            default = params[key].default
            if default is not inspect.Parameter.empty:
                want = float if isinstance(default, float) else type(default)
                if want is float and isinstance(value, int) and not isinstance(value, bool):
                    continue
                if isinstance(value, bool) != (want is bool) or not isinstance(value, want):
                    raise ConfigError(f"core_config.{key}: expected {want.__name__}, "
                                      f"got {type(value).__name__} {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values, "
                              f"got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(f"{source}: unknown key {key!r}{_suggest(key, names)}")
        data = {k: _yaml11_float(v) if _FIELD_TYPES[k] == "float" else v for k, v in data.items()}
        cfg = cls(**data)
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
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from None
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
                    raise ConfigError(f"override: unknown key {key!r}{_suggest(key, list(data))}")
                if key == "core" and value != data["core"]:
                    data["core_config"] = {}  # the other core's options do not apply
                if key == "env" and value != data["env"]:
                    data["env_kwargs"] = {}  # nor do the other env's
                data[key] = value
        return type(self).from_dict(data, source="override")


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


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


def _check_env_id(env_id: str) -> None:
    import gymnasium

    import sim  # noqa: F401  (registers the dnc/ envs)

    try:
        gymnasium.spec(env_id)
    except gymnasium.error.Error as e:
        raise ConfigError(f"env: {env_id!r} is not a registered Gymnasium id ({e})") from None


def _suggest(key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve(config: str | None = None, overrides: list[str] | None = None,
            **explicit: Any) -> TrainConfig:
    """Defaults, then the YAML file, then ``--set`` overrides, then explicit CLI flags
    (``env``, ``core``, ``seed``, ``device``, ``total_steps``) that are not None."""
    cfg = TrainConfig.load(config) if config else TrainConfig().validate()
    sets = list(overrides or [])
    sets += [f"{k}={v}" for k, v in explicit.items() if v is not None]
    return cfg.override(sets) if sets else cfg
