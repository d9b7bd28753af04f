"""The WebSocket router: a change reaches exactly the sessions that follow its order or its owner."""

from __future__ import annotations

from serving_api.streaming.orders import OrderRouter, StatusChange


class Session:
    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver(self, change: StatusChange) -> None:
        self.got.append(change.message_id)


def test_a_change_reaches_followers_of_its_order_or_owner_once() -> None:
    router = OrderRouter()
    by_order, by_user, both, other = Session(), Session(), Session(), Session()
    router.follow_order(by_order, "O1")
    router.follow_user(by_user, "alice")
    router.follow_order(both, "O1")
    router.follow_user(both, "alice")
    router.follow_user(other, "bob")
    router.dispatch(StatusChange("m1", "O1", "alice", "PAID", 0))
    assert (by_order.got, by_user.got, both.got, other.got) == (["m1"], ["m1"], ["m1"], [])
    router.forget(both, {"O1"}, "alice")
    router.unfollow_order(by_order, "O1")
    router.dispatch(StatusChange("m2", "O1", "alice", "FULFILLED", 1))
    assert (by_order.got, by_user.got, both.got) == (["m1"], ["m1", "m2"], ["m1"])
    router.forget(by_user, set(), "alice")
    assert router._by_order == {} and router._by_user == {"bob": {other}}
