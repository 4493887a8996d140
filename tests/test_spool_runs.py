"""The disk-only backlog as runs of sequences, against a plain set of sequences."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from htevents_async._spool._runs import Runs


def expand(spans: list[tuple[int, int]]) -> list[int]:
    return [seq for lo, hi in spans for seq in range(lo, hi + 1)]


# Each step is (kind, a, b, flag): "append" a new events; "defer" the next a picked to
# later; "take" a..a+b, as a broken group does; "pick" a and read them back (the fresh
# runs too when flag); "fail" picks a, takes b..b+10 and fails the read; "wake" ends the
# backoffs.
steps = st.lists(
    st.tuples(
        st.sampled_from(["append", "defer", "take", "pick", "fail", "wake"]),
        st.integers(1, 40),
        st.integers(0, 20),
        st.booleans(),
    ),
    max_size=40,
)


@given(steps)
def test_every_sequence_is_in_exactly_one_place(program: list[tuple[str, int, int, bool]]) -> None:
    """What is picked, taken or still waiting never overlaps and never goes missing."""
    runs = Runs()
    waiting: set[int] = set()
    gone: list[int] = []
    seq = 0
    for kind, a, b, flag in program:
        if kind == "append":
            for _ in range(a):
                seq += 1
                runs.append(seq)
                waiting.add(seq)
        elif kind == "defer":
            picked = expand(runs.pick(a, 0.0, True))
            runs.read_done()
            runs.defer([(s, s) for s in picked], 10.0)
        elif kind == "take":
            taken = runs.take(a, a + b)
            assert taken == sorted(s for s in waiting if a <= s <= a + b)
            waiting -= set(taken)
        elif kind == "pick":
            picked = expand(runs.pick(a, 5.0, flag))
            assert len(picked) <= a
            assert set(picked) <= waiting
            runs.read_done()
            waiting -= set(picked)
            gone.extend(picked)
        elif kind == "fail":
            # A read that fails after a broken group took part of what it picked.
            picked = expand(runs.pick(a, 5.0, flag))
            taken = runs.take(b, b + 10)
            assert taken == sorted(s for s in waiting if b <= s <= b + 10)
            waiting -= set(taken)
            runs.read_failed()
        else:
            runs.wake()
    assert len(gone) == len(set(gone))
    # Whatever is left comes back, once the backoffs are over, each exactly once.
    rest = expand(runs.pick(10**6, 100.0, True))
    assert sorted(rest) == sorted(waiting)
    assert runs.next_ready() is None


def test_fresh_runs_go_in_sequence_order_and_backoffs_wait() -> None:
    """During an outage only runs whose backoff ended are picked."""
    runs = Runs()
    for seq in range(1, 11):
        runs.append(seq)
    runs.defer([(20, 25)], not_before=50.0)
    assert runs.pick(4, now=0.0, fresh_too=True) == [(1, 4)]
    runs.read_done()
    assert runs.pick(100, now=10.0, fresh_too=False) == []
    assert runs.next_ready() == 50.0
    assert runs.pick(3, now=60.0, fresh_too=False) == [(20, 22)]
    runs.read_done()
    assert runs.pick(100, now=60.0, fresh_too=True) == [(5, 10), (23, 25)]


def test_a_failed_read_puts_back_what_a_broken_group_did_not_take() -> None:
    runs = Runs()
    for seq in range(1, 21):
        runs.append(seq)
    assert runs.pick(10, now=0.0, fresh_too=True) == [(1, 10)]
    assert runs.take(8, 12) == [8, 9, 10, 11, 12]
    runs.read_failed()
    assert runs.pick(100, now=0.0, fresh_too=True) == [(1, 7), (13, 20)]
