"""Helpers of the stream tests: synthetic frames (shared with the serve tests) and videos, a real MQTT
broker, a subscriber."""

import asyncio
import json
import socket
import threading
import time

import cv2

from tests.synthetic_frames import synthetic_frames  # noqa: F401 - the stream tests take it from here


def write_video(path, frames, fourcc="MJPG"):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        w.write(f)
    w.release()
    return path


def wait_until(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real MQTT broker (amqtt) in this process, in its own event loop thread."""

    def __init__(self, port):
        self.port, self.loop, self.thread, self.broker = port, None, None, None

    def start(self):
        from amqtt.broker import Broker as AmqttBroker

        ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}

        def serve():
            asyncio.set_event_loop(self.loop)

            async def up():
                self.broker = AmqttBroker(config)
                await self.broker.start()

            self.loop.run_until_complete(up())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True, name="amqtt")
        self.thread.start()
        assert ready.wait(20), "broker did not start"

    def stop(self):
        async def down():
            # amqtt closes its listening sockets only after it has closed every
            # session: a client reconnecting in that gap keeps a connection no one
            # closes (a fresh-clone CI's sink stayed connected to the stopped
            # broker). Stop listening first.
            for server in self.broker._servers.values():
                server.instance.close()
            await self.broker.shutdown()

        asyncio.run_coroutine_threadsafe(down(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)
        self.loop.close()


class Subscriber:
    """Collects the JSON payloads of one topic; resubscribes after a reconnect."""

    def __init__(self, port, topic):
        import paho.mqtt.client as mqtt

        self.messages, self.subscribed = [], threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append(json.loads(m.payload))
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(20), "subscriber could not subscribe"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def folder_with_a_corrupt_image(folder, dest):
    """`dest` holding the first 5 images of `folder` and one undecodable file
    between them (002b.png): 5 good frames and 1 corrupt one."""
    dest.mkdir()
    for p in sorted(folder.glob("*.png"))[:5]:
        (dest / p.name).write_bytes(p.read_bytes())
    (dest / "002b.png").write_bytes(b"\x89PNG garbage")
    return dest
