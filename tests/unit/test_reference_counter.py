"""Ownership reference counting as plain state."""

from jray._private.worker.reference_counter import ReferenceCounter


def make():
    freed, borrows = [], []
    rc = ReferenceCounter(freed.append, lambda oid, owner, add: borrows.append((oid, add)))
    return rc, freed, borrows


def test_owned_object_freed_when_last_ref_and_borrower_gone():
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.incr(b"o")
    rc.incr(b"o")  # a pending task holds it
    rc.add_borrower(b"o", b"w1")
    rc.decr(b"o")
    rc.decr(b"o")
    assert freed == []
    rc.remove_borrower(b"o", b"w1")
    assert freed == [b"o"]


def test_contained_refs_live_with_the_outer_object():
    rc, freed, _ = make()
    rc.add_owned(b"inner")
    rc.incr(b"inner")
    rc.add_owned(b"outer", contained=[b"inner"])
    rc.incr(b"outer")
    rc.decr(b"inner")
    assert freed == []
    rc.decr(b"outer")
    assert freed == [b"outer", b"inner"]


def test_borrowing_registers_and_unregisters_once():
    rc, _, borrows = make()
    rc.incr(b"x", ("h:1", b"w"))
    rc.incr(b"x", ("h:1", b"w"))
    rc.decr(b"x")
    rc.decr(b"x")
    assert borrows == [(b"x", True), (b"x", False)]


def test_deferred_decrements_apply_on_drain():
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.incr(b"o")
    rc.decr_deferred(b"o")
    assert freed == []
    rc.drain()
    assert freed == [b"o"]


def test_borrower_registrations_are_counted():
    # A hand-off registers a caller that already borrows: two registrations,
    # each undone by one removal.
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.add_borrower(b"o", b"w1")
    rc.add_borrower(b"o", b"w1")
    rc.remove_borrower(b"o", b"w1")
    assert freed == []
    rc.remove_borrower(b"o", b"w1")
    assert freed == [b"o"]


def test_removal_of_an_unregistered_borrower_changes_nothing():
    rc, freed, _ = make()
    rc.add_owned(b"o")  # no ref yet (a task just submitted)
    rc.remove_borrower(b"o", b"stranger")
    assert freed == [] and b"o" in rc


def test_dead_borrower_is_dropped_with_all_its_registrations():
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.add_borrower(b"o", b"w1")
    rc.add_borrower(b"o", b"w1")
    rc.remove_borrower_everywhere(b"w1")
    assert freed == [b"o"]


def test_handed_off_refs_need_no_registration():
    # The caller of a task whose return value holds x: the worker registered
    # it with x's owner already, so counting x sends nothing until the outer
    # object goes.
    rc, _, borrows = make()
    rc.add_owned(b"outer")
    rc.incr(b"outer")
    rc.set_contained(b"outer", [b"x", b"x"], [("h:1", b"w"), ("h:1", b"w")], registered=True)
    assert borrows == []
    rc.incr(b"x", ("h:1", b"w"))  # the value was deserialized: a ref of our own
    rc.decr(b"outer")
    assert borrows == []
    rc.decr(b"x")
    assert borrows == [(b"x", False)]
    assert b"x" not in rc


def test_hand_off_of_a_ref_already_borrowed_gives_the_extra_registration_back():
    rc, _, borrows = make()
    rc.incr(b"x", ("h:1", b"w"))
    assert borrows == [(b"x", True)]
    rc.add_owned(b"outer")
    rc.incr(b"outer")
    rc.set_contained(b"outer", [b"x"], [("h:1", b"w")], registered=True)
    assert borrows == [(b"x", True), (b"x", False)]  # one registration left at the owner
    rc.decr(b"x")
    rc.decr(b"outer")
    assert borrows == [(b"x", True), (b"x", False), (b"x", False)]


def test_hand_off_to_an_unknown_outer_object_counts_nothing():
    rc, _, borrows = make()
    assert not rc.set_contained(b"gone", [b"x"], [("h:1", b"w")], registered=True)
    assert b"x" not in rc and borrows == []


def test_borrower_ids_lists_registered_borrowers():
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.add_owned(b"p")
    rc.add_borrower(b"o", b"w1")
    rc.add_borrower(b"p", b"w2")
    assert rc.borrower_ids() == {b"w1", b"w2"}
    rc.remove_borrower_everywhere(b"w1")
    assert rc.borrower_ids() == {b"w2"} and freed == [b"o"]


def test_borrowers_of_one_object_are_never_seen_on_another():
    """Entries start with one shared empty borrower table (no dict per
    object): the first registration gives an entry a table of its own."""
    rc, freed, _ = make()
    for oid in (b"a", b"b", b"c"):
        rc.add_owned(oid)
        rc.incr(oid)
    rc.add_borrower(b"a", b"w1")
    rc.add_borrower(b"a", b"w1")
    rc.add_borrower(b"b", b"w2")
    assert rc.snapshot() == {b"a": (1, True, 1), b"b": (1, True, 1), b"c": (1, True, 0)}
    assert rc.borrower_ids() == {b"w1", b"w2"}
    rc.remove_borrower_everywhere(b"w1")
    for oid in (b"a", b"b", b"c"):
        rc.decr(oid)
    assert freed == [b"a", b"c"]  # b still has its borrower
    rc.add_owned(b"d")
    rc.incr(b"d")
    assert rc.snapshot()[b"d"] == (1, True, 0)
    rc.remove_borrower(b"b", b"w2")
    assert freed == [b"a", b"c", b"b"]


def test_a_plain_owned_count_takes_on_borrowers_and_contents_when_they_come():
    """An owned object nobody borrows is kept as a bare count; the first
    borrower, or refs captured inside it, must count exactly as before."""
    import gc

    rc, freed, borrows = make()
    rc.add_owned(b"o")
    rc.incr(b"o", n=2)
    assert rc.snapshot() == {b"o": (2, True, 0)}
    assert rc.get(b"o").count == 2 and rc.get(b"o").owned
    assert not gc.is_tracked(rc._entries[b"o"])  # one object fewer per result for the collector
    rc.remove_borrower(b"o", b"stranger")  # never registered: nothing changes
    rc.decr(b"o")
    assert freed == [] and rc.owned_ids() == [b"o"]
    rc.add_borrower(b"o", b"w1")  # now a full entry, with its count kept
    rc.decr(b"o")
    assert freed == [] and rc.snapshot() == {b"o": (0, True, 1)}
    rc.remove_borrower(b"o", b"w1")
    assert freed == [b"o"]
    # refs captured inside a plain one: they live while it does
    rc.add_owned(b"inner")
    rc.incr(b"inner")
    rc.add_owned(b"outer")
    rc.incr(b"outer")
    rc.set_contained(b"outer", [b"inner"])
    rc.decr(b"inner")
    assert freed == [b"o"]
    rc.decr(b"outer")
    assert freed == [b"o", b"outer", b"inner"] and borrows == []
    # an owned count that a deferred decrement (ObjectRef.__del__) ends
    rc.add_owned(b"p")
    rc.incr(b"p")
    rc.decr_deferred(b"p")
    rc.drain()
    assert freed[-1] == b"p" and b"p" not in rc
