"""streams.framework.pydantic_fields against pydantic's own validation: a record
assembled by writing its fields and pydantic's private instance fields is the record
``model_validate`` builds (equal, the same fields set, extras and private state, the same
dump), for every input record; and the switch between the two."""

from __future__ import annotations

from typing import Any

import pytest

from streams import assembly
from streams.framework import pydantic_fields
from streams.records import FeatureSample, FillEvent, HealthEvent, ModelScore, Record
from tests.samples import SAMPLES

INPUT_RECORDS = (HealthEvent, FillEvent, ModelScore, FeatureSample)
_PRIVATE = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def _state(record: Record) -> tuple[Any, ...]:
    return (type(record), record.__dict__, *(getattr(record, name) for name in _PRIVATE),
            record.model_dump(mode="json"))


@pytest.mark.parametrize("assemble", [pydantic_fields.assemble_in_python,
                                      assembly.FAST_ASSEMBLE],
                         ids=["python", "fast"])
@pytest.mark.parametrize("cls", INPUT_RECORDS, ids=lambda cls: cls.__name__)
def test_an_assembled_record_is_the_one_pydantic_validates(assemble: Any,
                                                           cls: type[Record]) -> None:
    for sample in SAMPLES[cls.__name__]:
        fields = dict(sample.__dict__)
        validated = cls.model_validate(dict(fields))
        assembled = assemble(cls, fields, set(cls.model_fields))
        assert assembled == validated
        assert _state(assembled) == _state(validated)


def test_switched_to_pydantic_and_back() -> None:
    sample = SAMPLES["HealthEvent"][0]
    try:
        pydantic_fields.use_pydantic()
        assert assembly._assemble is pydantic_fields.assemble_validated
        datum = {**sample.model_dump(), "scope": "not a scope!"}
        with pytest.raises(ValueError, match="scope"):  # pydantic's own error
            pydantic_fields.assemble_validated(HealthEvent, datum, set())
        assert pydantic_fields.assemble_validated(
            HealthEvent, dict(sample.__dict__), set()) == sample
    finally:
        pydantic_fields.use_fast_assembly()
    assert assembly._assemble is assembly.FAST_ASSEMBLE


def test_record_classes_read_through_pydantics_hook_again_when_switched_off() -> None:
    from streams import avrodecode

    extension = avrodecode.extension
    if extension is None:
        pytest.skip("the C extension is off: attribute reads already go through the hook")
    plain = list(pydantic_fields._plain_classes)
    assert HealthEvent in plain and all(extension.has_plain_getattr(cls) for cls in plain)
    sample = SAMPLES["HealthEvent"][0]
    try:
        pydantic_fields.use_pydantic()
        assert not any(extension.has_plain_getattr(cls) for cls in plain)
        assert sample.scope == sample.model_dump()["scope"]
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            sample.nothing  # noqa: B018  (pydantic's hook answers)
    finally:
        pydantic_fields.use_fast_assembly()
    assert all(extension.has_plain_getattr(cls) for cls in plain)
