"""From Locust's `request` event to the recorder: the one place a request's outcome is read."""

from typing import Any

from harness.load.failures import failure_message
from harness.load.recorder import Recorder


class RequestListener:
    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def on_request(
        self, response_time: float, exception: Exception | None, context: dict[str, Any], **_: Any
    ) -> None:
        kind = context.get("error_kind") if context else None
        if exception is not None and kind is None:
            kind = type(exception).__name__
        late = bool(context and context.get("late"))
        message = str(exception) if exception is not None else ""
        if kind is not None and not message.strip():  # a user class that said nothing: say so
            message = failure_message(kind, "")
        measures = context.get("measures") if context else None
        self.recorder.record(response_time / 1000.0, kind, late, message, measures)
