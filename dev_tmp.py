import sys; sys.path.insert(0, "tests/stream")
from test_drift import _stream, _parts
from cfnc_edge.bundle import Bundle
b = Bundle.open("/tmp/webdev/bundle")
for c in ("brightness", "camera shift"):
    r, s = _stream(b, _parts(100, c, at=50)); print(c, r.drift[0].alarm_frame - 50)
