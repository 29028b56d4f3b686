"""Log patterns every run watches for; a scenario adds its own under observe.log_patterns."""

DEFAULT_LOG_PATTERNS: dict[str, str] = {
    "signal_11": r"Signal \(11\) received",
    "signal_any": r"Signal \((\d+)\) received",
    "dropped_span": r"BatchSpanProcessor queue is full",
    "traceback": r"Traceback \(most recent call last\)",
}
