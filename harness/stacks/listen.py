"""Which addresses a stack may listen on: loopback, or one of this host's own interface addresses."""

import ipaddress

import psutil


def local_addresses() -> set[str]:
    return {addr.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for addr in addrs}


def check_listen_address(value: str) -> str:
    """The address unchanged, or ValueError naming what is wrong with it."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if address.is_unspecified:
        raise ValueError(f"{value} would listen on every interface; name one address of this host")
    if not address.is_loopback and value not in local_addresses():
        raise ValueError(f"{value} is not an address of this host's interfaces (see `ip addr`)")
    return value
