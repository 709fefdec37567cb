"""Loopback ports for private servers: several at once are distinct."""

from shareflow.system.ports import free_ports, port_in_use


def test_free_ports_are_distinct_and_free_once_chosen():
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert not any(port_in_use("127.0.0.1", p) for p in ports)
