"""Outputs of a stream. Each sink is a short module; see base.Sink for the contract."""

from cfnc_edge.stream.sinks.base import Sink, SinkThread, StreamContext, Verdict
from cfnc_edge.stream.sinks.display import DisplaySink
from cfnc_edge.stream.sinks.files import AnnotatedSink, AnomalySink
from cfnc_edge.stream.sinks.jsonlines import JsonLinesSink
from cfnc_edge.stream.sinks.status import StatusLineSink

__all__ = ["AnnotatedSink", "AnomalySink", "DisplaySink", "JsonLinesSink", "Sink", "SinkThread",
           "StatusLineSink", "StreamContext", "Verdict"]
