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


def test_escaped_objects_are_never_freed():
    rc, freed, _ = make()
    rc.add_owned(b"o")
    rc.incr(b"o")
    rc.mark_escaped(b"o")
    rc.decr(b"o")
    assert freed == []
