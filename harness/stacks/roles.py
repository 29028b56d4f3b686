"""The roles each stack kind has; faults and observers select processes by these names."""

STACK_ROLES: dict[str, tuple[str, ...]] = {
    "triton": ("server", "stub"),
    "external": (),
}
