"""Load and probes go only to loopback addresses (127.0.0.0/8, ::1) or `localhost`."""

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
