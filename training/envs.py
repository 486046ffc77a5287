"""Env ids and keyword arguments, checked with one-line errors (for configs and CLIs)."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable

import gymnasium as gym


def env_spec(env_id: str):
    """``gymnasium.spec`` that also takes Gymnasium's ``"module:EnvId"`` form (as
    ``gymnasium.make`` does): the module is imported first, so that it registers its envs
    (e.g. ``"popgym:popgym-RepeatPreviousEasy-v0"``). A module that cannot be imported is
    a ``gymnasium.error.Error`` naming it, like an unknown id."""
    import importlib

    module, _, name = env_id.rpartition(":") if isinstance(env_id, str) else ("", "", env_id)
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise gym.error.Error(f"the module {module!r} of env {env_id!r} cannot be imported "
                                  f"({e}); install the package that registers it") from None
    return gym.spec(name)


def env_kwarg_names(env_id: str) -> tuple[str, ...] | None:
    """The keyword arguments ``gymnasium.make(env_id, ...)`` passes on to the env: the
    parameters of its entry point (the env class's ``__init__`` or the factory function)
    plus the registered default kwargs; None when the entry point takes ``**kwargs``
    (anything may be accepted)."""
    from gymnasium.envs.registration import load_env_creator

    spec = env_spec(env_id)
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    target = creator.__init__ if inspect.isclass(creator) else creator
    names = []
    for param in inspect.signature(target).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return None
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and \
                param.name != "self":
            names.append(param.name)
    names += [k for k in (spec.kwargs or {}) if k not in names]
    return tuple(names)


def check_env_kwargs(env_id: str, keys: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` (one line, starting with ``what``) for the first key the env
    does not take, with a "did you mean" and the keys it does take."""
    accepted = env_kwarg_names(env_id)
    if accepted is None:
        return
    for key in keys:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{what}: {env_id} has no keyword argument {key!r}{hint}; "
                             f"it accepts: {', '.join(accepted)}")


def make_env(env_id: str, kwargs: dict, what: str) -> gym.Env:
    """``gymnasium.make(env_id, **kwargs)``; a value the env refuses (its ValueError,
    TypeError or AssertionError, or a gymnasium error such as a missing dependency) is a
    one-line ``ValueError`` starting with ``what`` and carrying the env's own message."""
    try:
        return gym.make(env_id, **kwargs)
    except (ValueError, TypeError, AssertionError, gym.error.Error) as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{what}: {message}") from None
