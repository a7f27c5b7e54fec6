"""Test conditions: how observations are perturbed when a policy is evaluated.

A condition is written as ``+``-joined terms:

- ``unshuffled``: inputs in their true order.
- ``shuffled``: one permutation drawn at reset.
- ``reshuffle=T`` or ``reshuffle=LOW-HIGH``: a new permutation every T steps (or at
  intervals drawn from LOW..HIGH).
- ``realigned=T``: reshuffle every T steps and permute the policy's per-slot state with the
  inputs (exact invariance: equals ``shuffled`` episode by episode up to round-off).
- ``noise=N``: N noise channels appended (after shuffling).
- ``duplicate=K``: each input given K times.
- ``occlude=F`` (images): a fraction F of the patches hidden for each episode.
- ``background=NAME`` (images): the grass replaced by an image: a name of
  ``tasks.perturbations.offered_backgrounds()`` or a file.

Every term but ``unshuffled`` implies shuffling; ``unshuffled+noise=5`` is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sensoryneuron.errors import ConfigError
from tasks.perturbations import Perturbations

GRAMMAR = (
    "unshuffled, shuffled, reshuffle=T, reshuffle=LOW-HIGH, realigned=T, noise=N, "
    "duplicate=K, occlude=F, background=NAME, joined with '+'"
)
DEFAULT_CONDITIONS = ("unshuffled", "shuffled", "reshuffle=100", "noise=5")
IMAGE_CONDITIONS = ("unshuffled", "shuffled", "reshuffle=100", "occlude=0.5")


def default_conditions(observation: object) -> tuple[str, ...]:
    """The conditions of an evaluation without ``--condition``: noise channels for a vector
    task, occluded patches for an image task (a ``PatchObservation``)."""
    from tasks.spec import PatchObservation

    return IMAGE_CONDITIONS if isinstance(observation, PatchObservation) else DEFAULT_CONDITIONS


@dataclass(frozen=True)
class Condition:
    """A named perturbation setting for evaluation."""

    name: str
    perturbations: Perturbations
    realign: bool = False


def _int_value(term: str, value: str, minimum: int) -> int:
    """``value`` as an int: ASCII digits only (``str.isdigit`` also takes '²' and '٣')."""
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ConfigError(
            f"bad condition term {term!r}: expected an integer >= {minimum}; allowed: {GRAMMAR}"
        )
    return int(value)


def _fraction(term: str, value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not (value.isascii() and 0.0 <= fraction < 1.0):
        raise ConfigError(
            f"bad condition term {term!r}: expected a fraction in [0, 1); allowed: {GRAMMAR}"
        )
    return fraction


def parse_condition(text: str) -> Condition:
    """Parse one condition string (see the module docstring)."""
    fields: dict = {"shuffle": True}
    realign = False
    terms = text.strip().split("+")
    for term in terms:
        key, _, value = term.partition("=")
        if term == "unshuffled":
            fields["shuffle"] = False
        elif term == "shuffled":
            pass
        elif key in ("reshuffle", "realigned") and value:
            if "-" in value:
                low, _, high = value.partition("-")
                fields["reshuffle_every"] = (_int_value(term, low, 1), _int_value(term, high, 1))
            else:
                fields["reshuffle_every"] = _int_value(term, value, 1)
            realign = realign or key == "realigned"
        elif key == "noise" and value:
            fields["noise_channels"] = _int_value(term, value, 0)
        elif key == "duplicate" and value:
            fields["duplicate"] = _int_value(term, value, 1)
        elif key == "occlude" and value:
            fields["occlude"] = _fraction(term, value)
        elif key == "background" and value:
            fields["background"] = value
        else:
            raise ConfigError(f"unknown condition {text!r}; allowed: {GRAMMAR}")
    if not fields["shuffle"] and "reshuffle_every" in fields:
        raise ConfigError(f"condition {text!r} both unshuffles and reshuffles; allowed: {GRAMMAR}")
    try:
        perturbations = Perturbations(**fields)
    except ConfigError as exc:
        raise ConfigError(f"bad condition {text!r}: {exc}") from None
    return Condition(name=text.strip(), perturbations=perturbations, realign=realign)
