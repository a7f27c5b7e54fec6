"""Tests of the image path: frame preparation, patch perturbations, backgrounds, their wrapper
twins, the image settings of Perturbations and the image task specs."""

from __future__ import annotations

import copy
import doctest
import functools
import importlib.util
import pickle
import re
import warnings
from typing import Any

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import FrameStackObservation

import tasks
import tasks.images
import tasks.perturbations.patch_wrappers
import tasks.perturbations.patches
from sensoryneuron.actions import ActionMap
from sensoryneuron.errors import ConfigError
from tasks.batched import episode_rngs
from tasks.frame_preparation import FramePreparation
from tasks.images import (
    GrayFrames,
    GrayFrameStack,
    StackedGrayFrames,
    from_patches,
    grayscale,
    prepare_frames,
    to_patches,
)
from tasks.perturbations import BatchPerturbation, Perturbations
from tasks.perturbations.patch_wrappers import ShufflePatches, SwapBackground
from tasks.perturbations.patches import (
    GRASS_COLOURS,
    BackgroundPool,
    BackgroundSwap,
    PatchPerturbation,
    background_image,
    fit_image,
    offered_backgrounds,
)
from tasks.pools import GymPool
from tasks.spec import PatchObservation, TaskSpec, VectorObservation, get_task

H, W, P = 12, 18, 6  # a 2x3 grid of 6x6 patches
GRID = PatchObservation(frames=4, height=H, width=W, patch=P)
TINY_ID = "SensoryNeuronTest/TinyImage-v0"
EXPECTED_WARNINGS = ("is different from the unwrapped version",)


class TinyImageEnv(gym.Env):
    """A 12x18 RGB env: random pixels and grass drawn at reset, then a shift per step.

    It draws from ``np_random`` only at reset, as the pools assume.
    """

    metadata = {"render_modes": []}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0, 255, (H, W, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self._frame = np.zeros((H, W, 3), dtype=np.uint8)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        frame = self.np_random.integers(0, 256, (H, W, 3), dtype=np.uint8)
        grass = self.np_random.random((H, W)) < 0.5
        frame[grass] = GRASS_COLOURS[0]
        self._frame, self._t = frame, 0
        return self._frame.copy(), {}

    def step(self, action):
        self._t += 1
        shift = 1 if float(np.asarray(action).ravel()[0]) >= 0 else -1
        self._frame = np.roll(self._frame, shift, axis=1)
        return self._frame.copy(), float(self._frame[0, 0, 1]) / 255.0, False, self._t >= 30, {}


if TINY_ID not in gym.registry:
    gym.register(TINY_ID, entry_point=TinyImageEnv, max_episode_steps=40)

TINY_SPEC = TaskSpec(
    env_id=TINY_ID,
    observation=GRID,
    action=ActionMap.unit_box(1),
    max_steps=40,
    prepare=functools.partial(StackedGrayFrames, frames=4, crop_bottom=2),
)


def frames_env(**kwargs: Any) -> gym.Env:
    return StackedGrayFrames(gym.make(TINY_ID), **kwargs)


def actions(steps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.uniform(-1, 1, size=1).astype(np.float32) for _ in range(steps)]


def check_quietly(env: gym.Env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    messages = [str(w.message) for w in caught]
    assert [m for m in messages if not any(e in m for e in EXPECTED_WARNINGS)] == []


# ---------------------------------------------------------------------------------------------
# Frame preparation


def test_grayscale_uses_itu_r_601_weights() -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 202, 100]]], dtype=np.uint8)
    np.testing.assert_array_equal(grayscale(rgb), [[76, 150, 29, 160]])  # 76.245, 149.685, ...
    exact = np.array([[76.245, 149.685, 29.07, 159.874]]) / 255
    np.testing.assert_allclose(grayscale(rgb, np.float32), exact, rtol=1e-6)
    frames = np.random.default_rng(0).integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    gap = np.abs(grayscale(frames).astype(np.float64) / 255 - grayscale(frames, np.float32))
    assert gap.max() <= 0.5 / 255 + 1e-7
    np.testing.assert_array_equal(grayscale(frames.astype(np.float32)), grayscale(frames))


def test_prepare_frames_zeroes_the_bottom_rows_and_keeps_the_height() -> None:
    rgb = np.full((2, H, W, 3), 200, dtype=np.uint8)
    gray = prepare_frames(rgb, crop_bottom=3)
    assert gray.shape == (2, H, W) and gray.dtype == np.uint8
    assert (gray[:, -3:] == 0).all() and (gray[:, :-3] == 200).all()
    np.testing.assert_array_equal(prepare_frames(rgb), grayscale(rgb))


def test_patches_are_row_major_over_the_grid_and_frame_major_inside() -> None:
    frames = np.arange(3 * 2 * H * W).reshape(3, 2, H, W)  # [batch, F, H, W]
    patches = to_patches(frames, P)
    assert patches.shape == (3, 6, 2 * P * P)
    for row in range(2):
        for col in range(3):
            block = frames[:, :, row * P : (row + 1) * P, col * P : (col + 1) * P]
            np.testing.assert_array_equal(patches[:, row * 3 + col], block.reshape(3, -1))
    np.testing.assert_array_equal(from_patches(patches, P, H, W), frames)
    assert to_patches(frames.astype(np.uint8), P).dtype == np.uint8


def test_gray_frame_stack_starts_with_copies_and_keeps_oldest_first() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 2, 3, H, W, 3), dtype=np.uint8)  # [T, P, B, H, W, 3]
    stack = GrayFrameStack(frames=4, crop_bottom=2)
    out = stack.reset(rgb[0])
    assert out.shape == (2, 3, 4, H, W) and out.dtype == np.uint8
    for f in range(4):
        np.testing.assert_array_equal(out[:, :, f], prepare_frames(rgb[0], 2))
    for t in range(1, 6):
        out = stack.step(rgb[t])
    for f in range(4):
        np.testing.assert_array_equal(out[:, :, f], prepare_frames(rgb[2 + f], 2))
    stack.keep([1])
    np.testing.assert_array_equal(stack.stack, out[[1]])


def test_stacked_gray_frames_equals_gymnasium_frame_stack_of_gray_frames() -> None:
    mine = frames_env(frames=4, crop_bottom=2)
    theirs = FrameStackObservation(GrayFrames(gym.make(TINY_ID), crop_bottom=2), 4)
    a, _ = mine.reset(seed=3)
    b, _ = theirs.reset(seed=3)
    np.testing.assert_array_equal(a, b)
    assert (a[0] == a[3]).all() and a.shape == (4, H, W) and a in mine.observation_space
    for action in actions(8):
        a = mine.step(action)[0]
        b = theirs.step(action)[0]
        np.testing.assert_array_equal(a, b)
        assert a in mine.observation_space
    assert mine.observation_space == theirs.observation_space


def test_stacked_gray_frames_equals_the_batched_stack() -> None:
    env, raw = frames_env(crop_bottom=2), gym.make(TINY_ID)
    stack = GrayFrameStack(4, crop_bottom=2)
    np.testing.assert_array_equal(env.reset(seed=4)[0], stack.reset(raw.reset(seed=4)[0]))
    for action in actions(5):
        np.testing.assert_array_equal(env.step(action)[0], stack.step(raw.step(action)[0]))


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (
            lambda: grayscale(np.zeros((4, 4))),
            "RGB frames must have shape [..., H, W, 3], got (4, 4)",
        ),
        (lambda: grayscale(np.zeros((1, 1, 3)), np.int16), "grayscale gives uint8 or float32"),
        (
            lambda: prepare_frames(np.zeros((4, 2, 3)), -1),
            "crop_bottom must be an int >= 0, got -1",
        ),
        (
            lambda: prepare_frames(np.zeros((4, 2, 3)), 4),
            "crop_bottom=4 would zero all 4 rows of the frame",
        ),
        (lambda: to_patches(np.zeros((2, H, 10)), P), "a 12x10 frame does not split into 6x6"),
        (lambda: to_patches(np.zeros((H, W)), P), "frames must have shape [..., F, H, W], got"),
        (
            lambda: from_patches(np.zeros((5, 36)), P, H, W),
            "patches of a 12x18 frame must have shape [..., 6, F*36], got (5, 36)",
        ),
        (lambda: GrayFrameStack(frames=0), "frames must be an int >= 1, got 0"),
        (lambda: GrayFrameStack().step(np.zeros((1, 1, 3))), "Call reset() before step()."),
        (
            lambda: StackedGrayFrames(gym.make("CartPole-v1")),
            "StackedGrayFrames needs a uint8 [H, W, 3] RGB observation space, got Box(",
        ),
    ],
)
def test_frame_preparation_errors(call: Any, msg: str) -> None:
    with pytest.raises((ConfigError, gym.error.ResetNeeded), match=re.escape(msg)):
        call()


# ---------------------------------------------------------------------------------------------
# PatchPerturbation


def random_frames(members: int, episodes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (members, episodes, 4, H, W), dtype=np.uint8)


def test_patch_perturbation_gives_the_visible_patches_in_slot_order() -> None:
    pert = PatchPerturbation(GRID, shuffle=True, occlude=0.5)
    assert (pert.n_patches, pert.out_dim, pert.patch_size) == (6, 3, 144)
    frames = random_frames(2, 3)
    out = pert.reset(frames, episode_rngs([0, 1, 2]))
    assert out.shape == (2, 3, 3, 144) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    patches = to_patches(frames, P)
    for b in range(3):
        slots = pert.permutations[b]
        assert len(set(slots.tolist())) == 3
        np.testing.assert_array_equal(out[:, b], patches[:, b, slots] / np.float32(255))
    np.testing.assert_array_equal(pert.sources(), pert.permutations)
    hidden = pert.occluded()
    assert hidden.sum(axis=1).tolist() == [3, 3, 3]
    assert not hidden[np.arange(3)[:, None], pert.permutations].any()
    # a pool stores frames as float32 levels: same patches
    np.testing.assert_array_equal(
        PatchPerturbation(GRID, shuffle=True, occlude=0.5).reset(
            frames.astype(np.float32), episode_rngs([0, 1, 2])
        ),
        out,
    )


@pytest.mark.parametrize("reshuffle_every", [None, 3, (1, 4)])
def test_without_occlusion_the_draws_are_the_vector_ones(reshuffle_every: Any) -> None:
    patches = PatchPerturbation(GRID, shuffle=True, reshuffle_every=reshuffle_every)
    vector = BatchPerturbation(6, shuffle=True, reshuffle_every=reshuffle_every)
    frames = random_frames(1, 4)
    seeds = [3, 4, 5, 6]
    r1, r2 = episode_rngs(seeds), episode_rngs(seeds)
    patches.reset(frames, r1)
    vector.reset(np.zeros((1, 4, 6)), r2)
    for _ in range(12):
        np.testing.assert_array_equal(patches.permutations, vector.permutations)
        patches.step(frames, r1)
        vector.step(np.zeros((1, 4, 6)), r2)
        np.testing.assert_array_equal(patches.reshuffled, vector.reshuffled)


def test_occlusion_lasts_the_episode_and_reshuffles_move_the_visible_patches() -> None:
    pert = PatchPerturbation(GRID, shuffle=True, reshuffle_every=2, occlude=0.4)
    assert pert.out_dim == 4  # round(0.4 * 6) = 2 hidden
    frames = random_frames(2, 3, seed=1)
    rngs = episode_rngs([7, 8, 9])
    out = pert.reset(frames, rngs)
    visible = np.sort(pert.permutations, axis=1)
    for step in range(1, 9):
        before = pert.permutations.copy()
        new = pert.step(frames, rngs)
        assert pert.reshuffled.all() == (step % 2 == 0)
        np.testing.assert_array_equal(np.sort(pert.permutations, axis=1), visible)
        rel = pert.realignment(before)
        # the same frames: the new observation is the old one with its slots moved
        np.testing.assert_array_equal(new, np.take_along_axis(out, rel[None, :, :, None], 2))
        out = new


def test_occluded_count_rounds_half_to_even() -> None:
    grid = PatchObservation(frames=1, height=6, width=30, patch=6)  # N = 5
    assert PatchPerturbation(grid, occlude=0.5).out_dim == 3  # round(2.5) = 2
    assert PatchPerturbation(grid, occlude=0.7).out_dim == 1  # round(3.5) = 4


def test_unshuffled_patches_keep_grid_order() -> None:
    frames = random_frames(1, 2)
    rngs = episode_rngs([1, 2])
    state = [copy.deepcopy(r.bit_generator.state) for r in rngs]
    plain = PatchPerturbation(GRID)
    np.testing.assert_array_equal(
        plain.reset(frames, rngs), to_patches(frames, P) / np.float32(255)
    )
    assert [r.bit_generator.state for r in rngs] == state  # nothing drawn
    occluded = PatchPerturbation(GRID, occlude=0.5)
    occluded.reset(frames, rngs)
    assert (np.diff(occluded.permutations, axis=1) > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"occlude": 1.0}, "occlude must be a fraction in [0, 1), got 1.0"),
        ({"occlude": -0.1}, "occlude must be a fraction in [0, 1), got -0.1"),
        ({"occlude": True}, "occlude must be a fraction in [0, 1), got True"),
        ({"occlude": 0.95}, "occlude=0.95 would remove all 6 patches; keep at least one"),
        ({"shuffle": 1}, "shuffle must be a bool, got 1"),
        (
            {"reshuffle_every": 5},
            "reshuffle_every=5 needs shuffle=True; use reshuffle_every=None without shuffling",
        ),
    ],
)
def test_patch_perturbation_config_errors(kwargs: dict[str, Any], msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        PatchPerturbation(GRID, **kwargs)


def test_patch_perturbation_shape_errors() -> None:
    pert = PatchPerturbation(GRID, shuffle=True)
    rngs = episode_rngs([0, 1])
    with pytest.raises(gym.error.ResetNeeded):
        pert.step(random_frames(1, 2), rngs)
    msg = "obs must have shape [members, episodes, 4, 12, 18], got (1, 2, 4, 12, 12)"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        pert.reset(np.zeros((1, 2, 4, 12, 12)), rngs)
    with pytest.raises(ConfigError, match=re.escape("expected one Generator per episode (3)")):
        pert.reset(random_frames(1, 3), rngs)
    pert.reset(random_frames(1, 2), rngs)
    with pytest.raises(ConfigError, match=re.escape("reset() saw 2 episodes, step() got 1")):
        pert.step(random_frames(1, 1), rngs[:1])


# ---------------------------------------------------------------------------------------------
# Wrapper twins


def wrapper_episode(seed: int, steps: int, **kwargs: Any) -> tuple[list, list]:
    env = ShufflePatches(frames_env(crop_bottom=2), patch=P, **kwargs)
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions(steps):
        obs, _, _, _, info = env.step(action)
        observations.append(obs)
        infos.append(info)
    return observations, infos


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reshuffle_every": 3},
        {"reshuffle_every": (1, 4), "occlude": 0.5},
        {"shuffle": False, "occlude": 0.3},
    ],
    ids=["shuffle", "reshuffle_3", "reshuffle_random_occluded", "unshuffled_occluded"],
)
def test_shuffle_patches_is_bit_identical_to_the_batched_path(kwargs: dict[str, Any]) -> None:
    seeds, steps = [11, 12], 10
    pool = GymPool(TINY_SPEC)
    frames, rngs = pool.start(seeds, members=2)
    pert = Perturbations(
        shuffle=kwargs.get("shuffle", True),
        reshuffle_every=kwargs.get("reshuffle_every"),
        occlude=kwargs.get("occlude", 0.0),
    ).batch(GRID)
    batched = [pert.reset(frames, rngs)]
    for action in actions(steps):
        frames, _, _ = pool.step(np.broadcast_to(action, (2, 2, 1)))
        batched.append(pert.step(frames, rngs))
    pool.close()
    for b, seed in enumerate(seeds):
        observations, infos = wrapper_episode(seed, steps, **kwargs)
        for t, obs in enumerate(observations):
            np.testing.assert_array_equal(obs, batched[t][0, b])
            np.testing.assert_array_equal(obs, batched[t][1, b])
        np.testing.assert_array_equal(infos[-1]["permutation"], pert.permutations[b])


def test_shuffle_patches_reports_slots_and_occluded_patches() -> None:
    env = ShufflePatches(frames_env(), patch=P, reshuffle_every=2, occlude=0.5)
    obs, info = env.reset(seed=2)
    assert obs.shape == (3, 144) and obs in env.observation_space
    for step in range(1, 7):
        patches = to_patches(env.last_frames, P)
        np.testing.assert_array_equal(obs, patches[info["permutation"]] / np.float32(255))
        assert sorted(info["permutation"].tolist() + info["occluded"].tolist()) == list(range(6))
        obs, _, _, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert info["reshuffled"] == (step % 2 == 0) and obs in env.observation_space


def test_same_seed_same_patches() -> None:
    a, _ = wrapper_episode(21, 6, reshuffle_every=(1, 3), occlude=0.5)
    b, _ = wrapper_episode(21, 6, reshuffle_every=(1, 3), occlude=0.5)
    c, _ = wrapper_episode(22, 6, reshuffle_every=(1, 3), occlude=0.5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda: frames_env(crop_bottom=2),
        lambda: ShufflePatches(frames_env(), patch=P),
        lambda: ShufflePatches(frames_env(), patch=P, reshuffle_every=(2, 4), occlude=0.5),
        lambda: ShufflePatches(frames_env(), patch=3, shuffle=False),
        lambda: SwapBackground(gym.make(TINY_ID), image="noise:4"),
        lambda: Perturbations(reshuffle_every=3, occlude=0.2, background="stripes").make_env(
            TINY_SPEC
        ),
    ],
    ids=["frames", "shuffle", "reshuffle_occlude", "unshuffled_3x3", "background", "full_stack"],
)
def test_check_env_passes_through_the_image_wrappers(make: Any) -> None:
    env = make()
    check_quietly(env)
    env.close()


def test_spec_records_the_image_wrappers() -> None:
    env = ShufflePatches(
        StackedGrayFrames(SwapBackground(gym.make(TINY_ID), image="stripes:1"), crop_bottom=2),
        patch=P,
        reshuffle_every=(2, 5),
        occlude=0.5,
    )
    remade = env.spec.make()
    assert isinstance(remade, ShufflePatches) and remade.reshuffle_every == (2, 5)
    np.testing.assert_array_equal(env.reset(seed=9)[0], remade.reset(seed=9)[0])


def test_wrapper_errors() -> None:
    msg = "ShufflePatches needs a [frames, height, width] Box observation space, got Box("
    with pytest.raises(ConfigError, match=re.escape(msg)):
        ShufflePatches(gym.make("CartPole-v1"))
    with pytest.raises(ConfigError, match=re.escape("a 12x18 frame does not split into 5x5")):
        ShufflePatches(frames_env(), patch=5)
    with pytest.raises(ConfigError, match=re.escape("occlude must be a fraction in [0, 1)")):
        ShufflePatches(frames_env(), occlude=1)
    msg = "SwapBackground needs a uint8 [..., H, W, 3] RGB observation space, got Box("
    with pytest.raises(ConfigError, match=re.escape(msg)):
        SwapBackground(frames_env())
    with pytest.raises(gym.error.ResetNeeded):
        ShufflePatches(frames_env()).step(np.zeros(1, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Backgrounds


def test_background_swap_replaces_pixels_within_tolerance_of_any_colour() -> None:
    image = np.full((4, 4, 3), 7, dtype=np.uint8)
    swap = BackgroundSwap(colours=[(100, 202, 100), (10, 20, 30)], image=image, tolerance=2)
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    frame[0, 0] = (100, 202, 100)
    frame[0, 1] = (102, 200, 98)  # each channel within 2
    frame[0, 2] = (100, 205, 100)  # green off by 3
    frame[0, 3] = (11, 21, 31)
    out = swap(frame)
    assert swap.mask(frame)[0].tolist() == [True, True, False, True]
    assert out[0, :, 0].tolist() == [7, 7, 100, 7] and (out[1:] == 0).all()
    batch = np.stack([frame, frame[::-1]])[None]  # [1, 2, H, W, 3]
    np.testing.assert_array_equal(swap(batch), np.stack([out, swap(frame[::-1])])[None])
    floats = swap(frame.astype(np.float32))
    assert floats.dtype == np.float32 and (floats == out).all()


def test_default_tolerance_covers_the_blended_grass_of_car_racing_v3() -> None:
    swap = BackgroundSwap()
    shades = np.array([[[100, g, 100] for g in range(202, 229)]], dtype=np.uint8)
    assert swap.mask(shades).all()
    road = np.array([[[102, 102, 102], [100, 100, 100], [0, 0, 0], [255, 0, 0]]], np.uint8)
    assert not swap.mask(road).any()


def test_images_are_fitted_to_the_frame() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    tiled = fit_image(image, 5, 7, fit="tile")
    assert tiled.shape == (5, 7, 3)
    np.testing.assert_array_equal(tiled[2:4, 3:6], image)
    assert fit_image(image, 96, 96).shape == (96, 96, 3)
    swap = BackgroundSwap(image="checkerboard:5")
    np.testing.assert_array_equal(swap.fitted(H, W), background_image("checkerboard:5", (H, W)))


def test_procedural_images_come_from_their_seed() -> None:
    for name in ("checkerboard", "stripes", "noise"):
        a = background_image(name, (H, W))
        assert a.shape == (H, W, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, background_image(f"{name}:0", (H, W)))
        assert not np.array_equal(a, background_image(f"{name}:1", (H, W)))


def test_a_file_can_be_the_background(tmp_path: Any) -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (5, 8, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "bg.png", rgba)
    np.testing.assert_array_equal(background_image(str(tmp_path / "bg.png")), rgba[:, :, :3])
    iio.imwrite(tmp_path / "gray.png", rgba[:, :, 0])
    gray = background_image(str(tmp_path / "gray.png"))
    assert gray.shape == (5, 8, 3) and (gray[:, :, 2] == rgba[:, :, 0]).all()
    env = SwapBackground(gym.make(TINY_ID), image=str(tmp_path / "bg.png"), fit="tile")
    obs, _ = env.reset(seed=0)
    assert obs in env.observation_space


def pool_episode(env: gym.Env, seed: int) -> tuple[str, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    name = "none" if env.swap is None else env.swap.name
    return name, np.stack([obs] + [env.step(a)[0] for a in actions(3)])


def test_a_background_pool_draws_one_image_per_episode_from_the_reset_seed() -> None:
    pool = SwapBackground(gym.make(TINY_ID), image="none|noise:*|checkerboard:3")
    plain = gym.make(TINY_ID)
    drawn = [pool_episode(pool, seed) for seed in range(16)]
    names = [name for name, _ in drawn]
    assert {n.split(":")[0] for n in names} == {"none", "noise", "checkerboard"}
    assert len({n for n in names if n.startswith("noise:")}) > 1  # a seed per episode
    for seed, (name, frames) in enumerate(drawn):
        again = pool_episode(pool, seed)  # the same seed, after other episodes
        assert again[0] == name and np.array_equal(again[1], frames)
        own = np.stack([plain.reset(seed=seed)[0]] + [plain.step(a)[0] for a in actions(3)])
        grass = BackgroundSwap().mask(own)
        if name == "none":  # the env's own frames
            np.testing.assert_array_equal(frames, own)
        else:  # the image where the grass was, the env's pixels elsewhere
            image = BackgroundSwap(image=name).fitted(H, W)
            np.testing.assert_array_equal(frames[grass], np.broadcast_to(image, own.shape)[grass])
            np.testing.assert_array_equal(frames[~grass], own[~grass])


def test_a_background_pool_leaves_the_patch_draws_alone() -> None:
    # the pool draws from a generator of its own: the same permutations as without it
    pooled = ShufflePatches(
        StackedGrayFrames(SwapBackground(gym.make(TINY_ID), image="none|stripes:*")),
        patch=P,
        reshuffle_every=2,
    )
    plain = ShufflePatches(frames_env(), patch=P, reshuffle_every=2)
    for seed in (0, 1, 2):
        got = [pooled.reset(seed=seed)[1]["permutation"]]
        want = [plain.reset(seed=seed)[1]["permutation"]]
        for a in actions(5):
            got.append(pooled.step(a)[4]["permutation"])
            want.append(plain.step(a)[4]["permutation"])
        assert all(np.array_equal(x, y) for x, y in zip(got, want, strict=True))


def test_background_pool_errors() -> None:
    with pytest.raises(ConfigError, match=re.escape("'nope:*' draws a seed per episode for a ")):
        BackgroundPool("none|nope:*")
    with pytest.raises(ConfigError, match="background pool 'none||noise:1' has an empty"):
        BackgroundPool("none||noise:1")
    with pytest.raises(ConfigError, match="background 'nope' is neither an offered image"):
        BackgroundPool("none|nope")  # every image is read when the pool is made
    with pytest.raises(ConfigError, match=re.escape("background 'none|noise:*' is a pool")):
        BackgroundSwap(image="none|noise:*")
    msg = "background 'none|noise:*' draws one image per episode, which only the gym engine"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        FramePreparation(background="none|noise:*").batched()


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="needs scikit-image")
def test_training_samples_are_not_the_test_backgrounds() -> None:
    patches = tasks.perturbations.patches
    assert not set(patches.TRAINING_SAMPLES) & set(patches.SAMPLES)
    for name in patches.TRAINING_SAMPLES:
        image = background_image(name)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="needs scikit-image")
def test_scikit_image_samples_are_offered() -> None:
    assert set(tasks.perturbations.patches.SAMPLES) <= set(offered_backgrounds())
    assert background_image("astronaut").shape == (512, 512, 3)
    assert background_image("brick").shape == (512, 512, 3)  # a gray sample, as RGB


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"image": "nope"}, "background 'nope' is neither an offered image (checkerboard, "),
        ({"image": np.zeros((3, 3), np.float32)}, "image must hold uint8 pixels, got float32"),
        ({"image": np.zeros((3, 3, 2), np.uint8)}, "image must be [H, W], [H, W, 3] or [H, W, 4]"),
        ({"colours": [(1, 2)]}, "colours must be RGB triples of ints in 0..255, such as"),
        ({"colours": [(1, 2, 300)]}, "colours must be RGB triples of ints in 0..255"),
        ({"tolerance": -1}, "tolerance must be an int >= 0, got -1"),
        ({"fit": "crop"}, "fit must be one of resize, tile, got 'crop'"),
    ],
)
def test_background_errors(kwargs: dict[str, Any], msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        BackgroundSwap(**kwargs)


def test_swap_background_is_the_twin_of_background_swap() -> None:
    env, raw = SwapBackground(gym.make(TINY_ID), image="noise:3"), gym.make(TINY_ID)
    swap = BackgroundSwap(image="noise:3")
    np.testing.assert_array_equal(env.reset(seed=1)[0], swap(raw.reset(seed=1)[0]))
    for action in actions(3):
        np.testing.assert_array_equal(env.step(action)[0], swap(raw.step(action)[0]))


# ---------------------------------------------------------------------------------------------
# Perturbations: the image settings


def test_batch_dispatches_on_the_observation() -> None:
    p = Perturbations(reshuffle_every=5)
    assert isinstance(p.batch(5), BatchPerturbation)
    assert isinstance(p.batch(VectorObservation(("a", "b"))), BatchPerturbation)
    patch = p.batch(GRID)
    assert isinstance(patch, PatchPerturbation) and patch.reshuffle_every == 5
    assert Perturbations(occlude=0.5).batch(GRID).out_dim == 3


def test_vector_settings_save_as_before() -> None:
    d = Perturbations(reshuffle_every=(2, 4), noise_channels=3).to_dict()
    assert d == {
        "duplicate": 1,
        "shuffle": True,
        "reshuffle_every": [2, 4],
        "noise_channels": 3,
        "noise_std": 0.1,
    }


def test_image_settings_round_trip_and_describe_themselves() -> None:
    p = Perturbations(reshuffle_every=(2, 4), occlude=0.25, background="stripes:3")
    d = p.to_dict()
    assert d["occlude"] == 0.25 and d["background"] == "stripes:3"
    assert Perturbations.from_dict(d) == p
    assert p.describe() == (
        "reshuffled every 2-4 steps, 25% of patches occluded, background stripes:3"
    )
    assert p.agent_side() == Perturbations(reshuffle_every=(2, 4), occlude=0.25)


PATCH_MSG = "4 frames of 12x18, 2x3 patches"


@pytest.mark.parametrize(
    ("kwargs", "observation", "msg"),
    [
        (
            {"occlude": 0.5},
            5,
            "occlude=0.5 is for image tasks (a patch observation); this task gives 5 sensors",
        ),
        (
            {"background": "noise"},
            VectorObservation(("a", "b")),
            "background='noise' is for image tasks (a patch observation); this task gives 2 "
            "sensors",
        ),
        ({"duplicate": 2}, GRID, f"duplicate=2 is for vector tasks; this task gives {PATCH_MSG}"),
        (
            {"noise_channels": 3},
            GRID,
            f"noise_channels=3 is for vector tasks; this task gives {PATCH_MSG}",
        ),
        (
            {"background": "noise"},
            GRID,
            "background='noise' changes the RGB frames inside each env, before grayscale: make "
            "envs with Perturbations.make_env(spec), batched tasks from Perturbations.task(spec), "
            "and perturb their frames with agent_side()",
        ),
        ({"occlude": 0.99}, GRID, "occlude=0.99 would remove all 6 patches; keep at least one"),
    ],
)
def test_settings_for_the_other_kind_of_task_are_refused(
    kwargs: dict[str, Any], observation: Any, msg: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        Perturbations(**kwargs).batch(observation)


def test_bad_image_settings_are_refused_at_once() -> None:
    with pytest.raises(ConfigError, match=re.escape("occlude must be a fraction in [0, 1), got 2")):
        Perturbations(occlude=2)
    msg = "background must be None, an image name or a file path, got 3"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        Perturbations(background=3)


def test_wrap_builds_the_patch_twin() -> None:
    p = Perturbations(reshuffle_every=2, occlude=0.5)
    env = p.wrap(TINY_SPEC.make_env(), GRID)
    assert isinstance(env, ShufflePatches) and env.reshuffle_every == 2 and env.kept == 3
    msg = "the env gives Box(0, 255, (12, 18, 3), uint8), not the frame stacks (4, 12, 18) of"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        p.wrap(gym.make(TINY_ID), GRID)
    with pytest.raises(ConfigError, match=re.escape("occlude=0.5 is for image tasks")):
        p.wrap(gym.make("CartPole-v1"))


def test_task_puts_the_background_swap_beneath_the_frame_preparation() -> None:
    p = Perturbations(background="checkerboard:2")
    assert p.agent_side().task(TINY_SPEC) is TINY_SPEC
    spec = p.task(TINY_SPEC)
    assert spec.env_id == TINY_ID and spec.observation == TINY_SPEC.observation
    assert pickle.loads(pickle.dumps(spec)).prepare.background == "checkerboard:2"
    swapped = spec.make_env()
    assert isinstance(swapped, StackedGrayFrames) and isinstance(swapped.env, SwapBackground)
    pool = GymPool(spec)
    frames, _ = pool.start([3], members=1)
    raw, _ = gym.make(TINY_ID).reset(seed=3)
    expected = prepare_frames(BackgroundSwap(image="checkerboard:2")(raw), 2)
    np.testing.assert_array_equal(frames[0, 0, 3], expected)
    pool.close()
    env = p.make_env(TINY_SPEC)
    assert isinstance(env, ShufflePatches) and isinstance(env.env.env, SwapBackground)


# ---------------------------------------------------------------------------------------------
# Image task specs, real environments, docstrings


def test_image_task_specs() -> None:
    car = get_task("CarRacing-v3")
    assert car.observation == PatchObservation(frames=4, height=96, width=96, patch=6)
    assert car.action == ActionMap.box([-1.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert (car.max_steps, car.envpool_id) == (1000, "CarRacing-v3")
    assert car.engines == ("gym", "envpool")
    assert car.prepare is not None
    pong = get_task("ALE/Pong-v5")
    assert pong.observation.grid == (14, 14) and pong.action == ActionMap.discrete(6)
    assert pong.engines == ("gym",)
    assert get_task("CartPole-v1").prepare is None


@pytest.mark.slow
def test_car_racing_runs_through_the_whole_image_stack() -> None:
    pytest.importorskip("Box2D")
    spec = get_task("CarRacing-v3")
    env = spec.make_env()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 96, 96) and (obs[:, -12:] == 0).all() and (obs[0] == obs[3]).all()
    p = Perturbations(reshuffle_every=2, occlude=0.5, background="checkerboard")
    env = p.make_env(spec)
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, 144) and obs in env.observation_space
    assert isinstance(env.env.env, SwapBackground)  # ShufflePatches <- StackedGrayFrames <-
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0, 0.0], np.float32))
        assert obs in env.observation_space and not (terminated or truncated)
    rgb = env.unwrapped.state  # the raw RGB frame of the last step
    swap = BackgroundSwap()
    assert swap.mask(rgb[:84]).mean() > 0.3  # the grass the swap replaces
    assert swap.mask(swap(rgb)).sum() == 0
    env.close()


@pytest.mark.slow
def test_pong_runs_through_its_preparation() -> None:
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    spec = get_task("ALE/Pong-v5")
    env = Perturbations(occlude=0.5).make_env(spec)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (98, 144) and obs in env.observation_space
    for _ in range(3):
        obs = env.step(0)[0]
    assert obs in env.observation_space
    env.close()


@pytest.mark.parametrize(
    "module",
    [tasks.images, tasks.perturbations.patches, tasks.perturbations.patch_wrappers],
    ids=lambda m: m.__name__,
)
def test_docstring_examples_run(module: Any) -> None:
    pytest.importorskip("Box2D")  # some examples use CarRacing-v3
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
