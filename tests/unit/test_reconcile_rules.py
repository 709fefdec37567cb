"""How the reconciliation compares access rules with export clients (pure)."""

from __future__ import annotations

import pytest

from tests.fixtures.reconcile import _client_key, _covers


@pytest.mark.parametrize(("access_to", "key"), [
    ("192.0.2.10", "192.0.2.10/32"),
    ("192.0.2.10/32", "192.0.2.10/32"),
    ("198.51.100.0/24", "198.51.100.0/24"),
    ("2001:db8::1", "2001:db8::1/128"),
    ("0.0.0.0/0", "*"),       # everyone, however the export server writes it
    ("::/0", "*"),
    ("*", "*"),
])
def test_a_rule_and_its_export_client_compare_equal(access_to, key):
    assert _client_key(access_to) == key


@pytest.mark.parametrize(("access_to", "address", "covered"), [
    ("192.0.2.10", "192.0.2.10", True),
    ("192.0.2.11", "192.0.2.10", False),
    ("192.0.2.0/24", "192.0.2.10", True),
    ("198.51.100.0/24", "192.0.2.10", False),
    ("0.0.0.0/0", "192.0.2.10", True),
    ("*", "192.0.2.10", True),
    ("2001:db8::1", "192.0.2.10", False),
    ("not an address", "192.0.2.10", False),
])
def test_which_rules_let_the_probing_client_in(access_to, address, covered):
    assert _covers(access_to, address) is covered
