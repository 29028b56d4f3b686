"""Memory: cgroup limits (v1 and v2), the host's memory figures, the stressor process, sizes."""
