"""The captured GPU frame path (runtime/gpu/frame_graph.py) through the Inspector
on torch-cuda, against the CPU Inspector on the same frames, for every scorer,
square and non-square; replays see new input; a 4-source folder stream at
batch 32 keeps up. Skipped without an NVIDIA GPU: the same code is checked on
the CPU in test_frame_path.py.

Tolerance 5e-3 of the largest value, as for the GPU scorers
(test_gpu_combined.py): the GPU holds the factor and the bank in fp16."""

import cv2
import numpy as np
import pytest

from tests.gpu_support import gpu_module

cupy, pytestmark = gpu_module("the captured GPU frame path needs CuPy")

from test_frame_path import SCORERS, SIZES, bundles, frames, frames_at, rotating  # noqa: E402,F401 - fixtures

TOL = 5e-3


def relative(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def both(bundle):
    """(GPU Inspector on the captured frame path, CPU Inspector), ICA rotating in both."""
    from cfnc_edge.runtime.inspector import Inspector

    gpu, cpu = Inspector(bundle, "torch-cuda"), Inspector(bundle, "torch")
    assert gpu.frame_path is not None
    for insp in (gpu, cpu):
        rotating(insp.backend.model, insp.image_size)
    return gpu, cpu


def check(gpu, cpu, frames):
    got, ref = gpu(frames), cpu(frames)
    assert relative(np.stack([r.map for r in got]), np.stack([r.map for r in ref])) <= TOL
    assert relative(np.array([r.score for r in got]), np.array([r.score for r in ref])) <= TOL
    return got


@pytest.mark.parametrize("scorer", SCORERS)
@pytest.mark.parametrize("shape", SIZES)
def test_captured_frame_path_matches_the_cpu_pipeline(bundles, frames, shape, scorer):  # noqa: F811
    from cfnc_edge.runtime.gpu.frame_graph import bucket

    gpu, cpu = both(bundles[shape, scorer])
    for hw in [(96, 96), (80, 120)]:
        check(gpu, cpu, frames_at(frames, hw))  # 3 frames: run at batch 4, the padding row dropped
        entry = gpu.frame_path.entries[(bucket(len(frames)), *hw)]
        assert entry.graph is not None  # replayed, not run eagerly


def test_replay_sees_new_frames(bundles, frames):  # noqa: F811
    """The graph reads the static input on every replay: new content, new results; old content, old results."""
    gpu, cpu = both(bundles["wide", "gaussian"])
    a = frames_at(frames, (96, 96))
    b = [np.ascontiguousarray(f[::-1, ::-1]) for f in a]
    first = check(gpu, cpu, a)
    second = check(gpu, cpu, b)
    assert not np.allclose([r.score for r in first], [r.score for r in second])
    again = gpu(a)
    np.testing.assert_allclose([r.score for r in again], [r.score for r in first], rtol=1e-6)


def test_mixed_frame_sizes_in_one_call(bundles, frames):  # noqa: F811
    gpu, cpu = both(bundles["square", "combined"])
    mixed = frames_at(frames[:2], (96, 96)) + frames_at(frames[2:], (80, 120))
    check(gpu, cpu, mixed)
    assert {k[1:] for k in gpu.frame_path.entries} == {(96, 96), (80, 120)}


def test_four_folder_sources_at_batch_32_keep_up(bundles, frames, tmp_path):  # noqa: F811
    """Four folders of 128 camera-sized frames each, batches of 32 on the captured path:
    every frame inspected, none dropped, faster than four 30 fps cameras."""
    from cfnc_edge.api import stream
    from cfnc_edge.stream.runner import StreamOptions

    n = 128
    for s in range(4):
        folder = tmp_path / f"cam{s}"
        folder.mkdir()
        for i in range(n):
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.resize(frames[i % len(frames)], (640, 480)))
    summary = stream(bundles["square", "combined"].path, [str(tmp_path / f"cam{s}") for s in range(4)],
                     StreamOptions(max_batch=32), backend="torch-cuda", output=tmp_path / "verdicts.jsonl")
    print(f"4-source folder stream at batch 32: {summary['fps']} frames/s, p99 {summary['latency_p99_ms']} ms")
    assert summary["frames"] == 4 * n and summary["dropped"] == 0
    assert summary["fps"] >= 4 * 30
