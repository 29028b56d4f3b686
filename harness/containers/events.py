"""Docker engine events as journal records: what the engine did to the run's containers, and when.

Each event becomes a `docker_event` with the action (`kill`, `die`, `start`, `restart`,
`pause`, `oom`, ...), the container's name, the details that matter (the signal of a kill,
the exit code of a die), and `engine_t`: the engine's own timestamp on the run clock, which
is when the engine acted, not when the harness read the event.
"""

from typing import Any

# Attributes worth keeping, by the name the journal gives them.
_ATTRIBUTES = {"exitCode": "exit_code", "signal": "signal", "name": "container", "image": "image"}
MAX_TEXT = 200


def event_fields(raw: dict[str, Any], wall_origin: float) -> dict[str, Any] | None:
    """Journal fields for one container event from the engine's stream; None for other events."""
    if raw.get("Type") != "container":
        return None
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    action = str(raw.get("Action") or raw.get("status") or "")
    fields: dict[str, Any] = {
        "action": action.split(":", 1)[0][:MAX_TEXT],  # `exec_start: sh -c ...` -> `exec_start`
        "container_id": str(actor.get("ID") or raw.get("id") or "")[:12],
    }
    for key, name in _ATTRIBUTES.items():
        if key in attributes:
            fields[name] = _number(attributes[key]) if key == "exitCode" else str(attributes[key])[:MAX_TEXT]
    fields["engine_t"] = round(event_time(raw) - wall_origin, 4)
    return fields


def event_time(raw: dict[str, Any]) -> float:
    """Seconds since the epoch, to the nanosecond when the engine gives it."""
    if raw.get("timeNano"):
        return int(raw["timeNano"]) / 1e9
    return float(raw.get("time", 0))


def event_key(raw: dict[str, Any]) -> tuple[Any, ...]:
    """The same event read twice (the live stream and the final catch-up) is recorded once."""
    return (raw.get("timeNano") or raw.get("time"), (raw.get("Actor") or {}).get("ID"), raw.get("Action"))


def _number(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
