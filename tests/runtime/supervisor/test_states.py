"""The pre-flight hook's answer, whatever shape the hook returns it in."""

from __future__ import annotations

from types import SimpleNamespace

from guardian.runtime.supervisor.states import STATES, StartCheck


def test_start_check_from_every_shape_a_hook_returns():
    assert StartCheck.coerce(None) == StartCheck(ok=True)
    assert StartCheck.coerce(False) == StartCheck(ok=False)
    same = StartCheck(ok=True, detail="d", repaired=True)
    assert StartCheck.coerce(same) is same
    result = SimpleNamespace(ok=0, detail=7, repaired=1)   # e.g. a pre-flight result object
    assert StartCheck.coerce(result) == StartCheck(ok=False, detail="7", repaired=True)
    assert StartCheck.coerce(object()) == StartCheck(ok=True)
    assert len(set(STATES)) == 7
