import cv2
import pytest
from stream_helpers import Broker, free_port, synthetic_frames, write_video


@pytest.fixture(scope="session")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "line.avi", synthetic_frames(24))


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(synthetic_frames(10, seed=4)):
        cv2.imwrite(str(d / f"{i:03d}.png"), f)
    return d


@pytest.fixture
def broker():
    b = Broker(free_port())
    b.start()
    yield b
    if b.thread.is_alive():
        b.stop()


