"""The worker's process set-up: garbage collection tuned for large tables."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from streams.settings import Settings
from streams.worker import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tune_gc_freezes_start_up_objects_and_sets_the_thresholds(restored_gc: None) -> None:
    start_up_object = {"state": [1, 2, 3]}
    tune_gc((10_000, 10, 1_000))
    assert gc.get_threshold() == (10_000, 10, 1_000)
    assert gc.get_freeze_count() > 0
    assert not any(start_up_object is o for o in gc.get_objects()), \
        "frozen objects are never scanned again"


def test_gc_thresholds_default_and_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_thresholds == (10_000, 10, 1_000)
    monkeypatch.setenv("POLYMON_GC_THRESHOLDS", "[700, 10, 10]")
    assert Settings().gc_thresholds == (700, 10, 10)


def test_a_zero_threshold_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYMON_GC_THRESHOLDS", "[0, 10, 10]")
    with pytest.raises(ValidationError, match="must be >= 1"):
        Settings()
