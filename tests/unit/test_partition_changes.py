"""What a partition hands to the commit: changed records, removed keys, nothing stale."""

from __future__ import annotations

from dsl import EVERY_MINUTE, Run, T, minutes


def test_a_check_in_marks_its_monitor_and_environment_changed() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)

    changes = run.p.take_changes()

    assert [m.key for m in changes.monitors] == [("acme", "job")]
    assert [e.key for e in changes.environments] == [("acme", "job", "production")]
    assert run.p.take_changes().environments == []  # taken once


def test_a_removed_environment_touched_again_is_not_written_back() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)
    run.p.take_changes()
    stale = run.env()

    run.delete(T + minutes(1))
    run.p.touch(stale)  # a reference kept somewhere (an index) is touched after removal
    changes = run.p.take_changes()

    assert changes.environments == []
    assert changes.removed_environments == [("acme", "job", "production")]
    assert changes.removed_monitors == [("acme", "job")]


def test_an_environment_removed_and_created_again_in_one_batch_is_written_as_new() -> None:
    run = Run()
    run.checkin(T, "ok", config=EVERY_MINUTE)
    run.p.take_changes()
    stale = run.env()

    run.delete(T + minutes(1))
    run.checkin(T + minutes(2), "in_progress", config=EVERY_MINUTE)
    run.p.touch(stale)
    changes = run.p.take_changes()

    assert [e for e in changes.environments] == [run.env()]
    assert changes.environments[0] is not stale
    assert changes.removed_environments == []  # the key exists again: write, not delete
