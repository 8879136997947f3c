"""`--mqtt mqtt://HOST:PORT/TOPIC`: verdicts to an MQTT broker (paho-mqtt).

One JSON message per verdict on TOPIC (the JSON line's object), or only the
anomalous ones. A retained status on TOPIC/status says online / stopped, and
offline through the broker's last will if the process dies.

The broker may be down at the start or at any time: paho reconnects in its
own thread, the sink never blocks. While disconnected, messages wait in a
bounded buffer; when it is full the oldest is dropped and counted. The
summary accounts for every message: published (acknowledged at QoS 1/2,
sent at QoS 0) + dropped + unsent = messages. A source's drift alarm
(stream/drift.py) is published on the status topic when it is raised.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import paho.mqtt.client as mqtt

from cfnc_edge.errors import CfncError
from cfnc_edge.stream.sinks.base import StreamContext, Verdict


@dataclass
class MqttOptions:
    url: str  # mqtt://[user:password@]HOST[:PORT]/TOPIC
    anomalies_only: bool = False
    qos: int = 1
    retain_status: bool = True
    buffer: int = 1000  # messages kept while the broker is unreachable
    reconnect_s: tuple[float, float] = (1.0, 30.0)  # first and longest wait between reconnects
    close_timeout_s: float = 5.0  # how long close() waits for outstanding acknowledgements


def parse_url(url: str) -> tuple[str, int, str, str | None, str | None]:
    """mqtt://[user:password@]HOST[:PORT]/TOPIC -> host, port, topic, user, password."""
    u = urlparse(url)
    topic = unquote(u.path.lstrip("/"))
    try:
        port = u.port or 1883
    except ValueError:
        port = -1
    if u.scheme != "mqtt" or not u.hostname or not topic or port < 0:
        raise CfncError(f"--mqtt {url}: give mqtt://HOST[:PORT]/TOPIC, e.g. mqtt://localhost:1883/line1/verdicts")
    if "#" in url or "?" in url or "+" in topic:
        raise CfncError(f"--mqtt {url}: a topic to publish on holds no wildcards (+, #) and no '?'")
    return u.hostname, port, topic, u.username, u.password


class MqttSink:
    name = "mqtt"
    lossless = True  # every verdict; write() never blocks: its own buffer is the bound

    def __init__(self, options: MqttOptions | str):
        self.opt = MqttOptions(options) if isinstance(options, str) else options
        if self.opt.qos not in (0, 1, 2):
            raise CfncError(f"--mqtt-qos {self.opt.qos}: give 0, 1 or 2")
        if self.opt.buffer < 1:
            raise CfncError(f"--mqtt-buffer {self.opt.buffer}: give at least 1")
        self.host, self.port, self.topic, user, password = parse_url(self.opt.url)
        self.status_topic = f"{self.topic}/status"
        self.buffer: deque[bytes] = deque()
        self.lock = threading.Lock()
        self.messages = self.handed = self.acks = self.dropped = 0
        self.status_infos: list[mqtt.MQTTMessageInfo] = []  # status messages: acknowledged too, not verdicts
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(*self.opt.reconnect_s)
        self.client.max_queued_messages_set(self.opt.buffer)  # bounds paho's QoS 1/2 messages awaiting an ack too
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_unreachable
        self.client.on_disconnect = self._on_unreachable
        self.reachable: bool | None = None  # None until the first attempt: log changes only
        if self.opt.retain_status:
            self.client.will_set(self.status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        self.log = print
        self.closing = False
        self.drift_alarms: dict[str, int] = {}  # source -> the frame its drift alarm was raised at

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self.lock:
            self.acks += 1

    @property
    def published(self) -> int:
        """Verdict messages the broker has (QoS 1/2) or that were sent (QoS 0)."""
        def done(info):
            try:
                return info.is_published()
            except (RuntimeError, ValueError):
                return False
        with self.lock:
            return self.acks - sum(map(done, self.status_infos))

    def _status(self, state: dict) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(self.status_topic, json.dumps(state), qos=1, retain=True)
        with self.lock:
            self.status_infos.append(info)
        return info

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.log(f"mqtt: broker {self.host}:{self.port} refused the connection ({reason_code})")
            return
        if self.reachable is False:
            self.log(f"mqtt: connected to {self.host}:{self.port} again")
        self.reachable = True
        if self.opt.retain_status:
            self._status(self._online())

    def _online(self) -> dict:
        return {"state": "online", **({"drift_alarm": dict(self.drift_alarms)} if self.drift_alarms else {})}

    def _on_unreachable(self, client, userdata, *args) -> None:
        if self.reachable is not False and not self.closing:
            self.log(f"mqtt: broker {self.host}:{self.port} unreachable; retrying in the background, keeping "
                     f"up to {self.opt.buffer} messages")
        self.reachable = False

    def open(self, ctx: StreamContext) -> None:
        self.log = ctx.log
        # connect_async + loop_start: a broker that is down at the start is
        # retried in paho's thread like one that goes down later
        self.client.connect_async(self.host, self.port)
        self.client.loop_start()

    def write(self, v: Verdict) -> None:
        if v.drift is not None and v.drift.alarm and v.label not in self.drift_alarms:
            self.drift_alarms[v.label] = v.index
            if self.opt.retain_status and self.client.is_connected():
                self._status(self._online())
        if self.opt.anomalies_only and not v.result.anomalous:
            return
        self._drain()  # what waited for a reconnect goes first, and makes room
        with self.lock:
            self.messages += 1
            self.buffer.append(json.dumps(v.record()).encode())
            if len(self.buffer) > self.opt.buffer:
                self.buffer.popleft()
                self.dropped += 1
        self._drain()

    def _drain(self) -> None:
        """Hand buffered messages to paho, in order, while connected and while
        paho holds fewer than `buffer` unacknowledged ones."""
        while self.client.is_connected():
            with self.lock:
                if not self.buffer:
                    return
                payload = self.buffer.popleft()
            info = self.client.publish(self.topic, payload, qos=self.opt.qos)
            with self.lock:
                if info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and self.opt.qos > 0):
                    self.handed += 1  # QoS 1/2 without a connection: paho keeps it and resends
                    continue
                # QoS 0 and the connection dropped just now, or paho's queue is
                # full: keep it (the buffer's bound decides what is dropped)
                self.buffer.appendleft(payload)
                return

    def close(self) -> dict:
        deadline = time.monotonic() + self.opt.close_timeout_s
        # a stream shorter than the first connection (a few images) ends before
        # the broker's CONNACK: wait for that attempt's outcome, not only while connected
        while time.monotonic() < deadline and self.reachable is None:
            time.sleep(0.02)
        while time.monotonic() < deadline and self.client.is_connected():
            self._drain()
            if not self.buffer and self.published >= self.handed:
                break
            time.sleep(0.02)
        if self.client.is_connected() and self.opt.retain_status:
            with contextlib.suppress(RuntimeError, ValueError):  # the broker left just now: nothing to wait for
                self._status({**self._online(), "state": "stopped", "messages": self.messages}).wait_for_publish(
                    max(0.0, deadline - time.monotonic()))
        self.closing = True
        self.client.disconnect()
        self.client.loop_stop()
        published = self.published
        with self.lock:
            unsent = self.messages - published - self.dropped
            if unsent:
                self.log(f"mqtt: {unsent} messages not delivered to {self.host}:{self.port} at the end")
            if self.dropped:
                self.log(f"mqtt: dropped {self.dropped} messages while the broker was unreachable "
                         f"(buffer {self.opt.buffer})")
            return {"url": self.opt.url, "messages": self.messages, "published": published,
                    "dropped": self.dropped, "unsent": unsent}
