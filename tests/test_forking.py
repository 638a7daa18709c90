import os

import pytest

from flamesync.errors import InputError
from flamesync.forking import call_in_child
from flamesync.phonetics.confidence import TranscriptMismatchError


def _pid_and_sum(a, *, b):
    return {"pid": os.getpid(), "sum": a + b}


def test_call_in_child_runs_elsewhere_and_returns_the_result():
    out = call_in_child(_pid_and_sum, 2, b=3.5)
    assert out["sum"] == 5.5
    assert out["pid"] != os.getpid() or not hasattr(os, "fork")


def test_call_in_child_raises_the_same_flamesync_error():
    def bad():
        raise TranscriptMismatchError("the transcript does not match the speech: test")

    with pytest.raises(TranscriptMismatchError, match="does not match"):
        call_in_child(bad)


def test_call_in_child_names_other_exceptions():
    def broken():
        return {}["missing"]

    with pytest.raises(RuntimeError, match="KeyError in a worker process"):
        call_in_child(broken)
    with pytest.raises(InputError):
        call_in_child(lambda: (_ for _ in ()).throw(InputError("bad input")))


def test_call_in_child_leaves_no_child_and_keeps_parent_state():
    state = {"n": 0}

    def mutate():
        state["n"] += 1
        return [state["n"], os.getpid()]

    n, pid = call_in_child(mutate)
    assert n == 1
    assert state["n"] == 0  # the child's changes stay in the child
    if hasattr(os, "fork"):
        with pytest.raises(ChildProcessError):  # already reaped
            os.waitpid(pid, os.WNOHANG)
