"""Worker "hosts" for the Celery tier: network namespaces joined to this machine by veth pairs.

Each namespace gets a private /30: the host side of its veth (`.1`, where the throwaway servers
listen) and the namespace side (`.2`, the worker's only address). A worker reaches nothing but
the host side of its own veth; taking that veth down cuts it off (a network partition).
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
from dataclasses import dataclass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    name: str
    host_if: str
    host_addr: str
    ns_addr: str

    def exec_prefix(self, hostname: str) -> list[str]:
        """Run a command inside the namespace with its own UTS name (`hostname`), as a host."""
        return ["ip", "netns", "exec", self.name, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', hostname]  # fmt: skip

    def set_link(self, up: bool) -> None:
        ip("link", "set", self.host_if, "up" if up else "down")


def used_networks() -> list[ipaddress.IPv4Network]:
    out = ip("-4", "-o", "addr", "show").stdout
    return [ipaddress.IPv4Interface(line.split()[3]).network for line in out.splitlines()]


def free_base() -> ipaddress.IPv4Network:
    """A 10.213.N.0/24 that no interface of this machine uses (other test runs may hold one)."""
    used = used_networks()
    candidates = list(range(256))
    random.shuffle(candidates)
    for third in candidates:
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if not any(net.overlaps(other) for other in used):
            return net
    raise RuntimeError("no free 10.213.N.0/24 for the worker namespaces")


def create(base: ipaddress.IPv4Network, index: int) -> Namespace:
    """Namespace `index` in `base`: its /30 block, veth pair, addresses and links up."""
    block = list(base.subnets(new_prefix=30))[index]
    host_addr, ns_addr = (str(a) for a in list(block.hosts())[:2])
    tag = f"{os.getpid() % 100000}{index}"
    ns = Namespace(f"sa-celery-{tag}", f"sah{tag}", host_addr, ns_addr)
    peer = f"san{tag}"
    ip("netns", "add", ns.name)
    try:
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", ns.name)
        ip("addr", "add", f"{host_addr}/30", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ip("-n", ns.name, "addr", "add", f"{ns_addr}/30", "dev", peer)
        ip("-n", ns.name, "link", "set", peer, "up")
        ip("-n", ns.name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError:
        delete(ns)
        raise
    return ns


def delete(ns: Namespace) -> None:
    """Remove the veth (both ends go with it) and the namespace; safe to call twice."""
    ip("link", "del", ns.host_if, check=False)
    ip("netns", "del", ns.name, check=False)
