"""Videos of shuffle robustness: play episodes, draw the panels, encode mp4 or gif.

- :mod:`evolve.video.record`: plays agents through the episode loop, frame by frame.
- :mod:`evolve.video.frames`: the panels (env, observation slots, attention, legend).
- :mod:`evolve.video.encode`: streaming mp4/gif writers, written atomically.
"""
