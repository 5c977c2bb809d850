"""Per-address rate limits on the fake clock."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FakeClock
from bot.throttle import PRUNE_AT, AddressThrottle


def test_an_address_gets_its_allowance_per_window_and_no_more() -> None:
    clock = FakeClock()
    throttle = AddressThrottle(3, timedelta(minutes=1), clock)
    assert [throttle.retry_after("10.0.0.1") for _ in range(3)] == [None, None, None]
    assert throttle.retry_after("10.0.0.1") == 60
    assert throttle.retry_after("10.0.0.2") is None  # another address is not affected
    clock.advance(timedelta(seconds=45))
    assert throttle.retry_after("10.0.0.1") == 15
    clock.advance(timedelta(seconds=15))
    assert throttle.retry_after("10.0.0.1") is None


def test_a_flood_of_invented_addresses_does_not_grow_the_table_without_bound() -> None:
    clock = FakeClock()
    throttle = AddressThrottle(1, timedelta(minutes=1), clock)
    for n in range(3 * PRUNE_AT):
        assert throttle.retry_after(f"addr-{n}") is None
    assert len(throttle) <= PRUNE_AT
    throttle.retry_after("steady")
    assert throttle.retry_after("steady") == 60  # the newest address is still counted
