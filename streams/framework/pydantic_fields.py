"""Input records assembled without pydantic's validation: the fields, already checked
against every constraint in plain code (streams.assembly), written straight into a new
model instance, with the private instance fields pydantic keeps beside them
(``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``: the
slots of ``BaseModel``, which streams.framework.gate checks). The C extension's
``assemble`` writes the same four, in a quarter of the time.

With the framework patches off, streams.assembly assembles through pydantic's own
``model_validate`` instead (:func:`use_pydantic`).

Imports no Faust, mode or aiokafka: the runner client reaches it through the records.
"""

from __future__ import annotations

from typing import Any

_object_setattr = object.__setattr__


def assemble_in_python(cls: Any, fields: dict[str, Any], names: set[str]) -> Any:
    """The model ``cls.model_validate(fields)`` builds, for fields already checked
    against every constraint of ``cls`` (enums already members) and ``names`` the set of
    their names: the input records' hot path, where validation costs as much as the Avro
    decode (pydantic's own model_construct is slower than validating). Records are
    frozen, so pydantic never adds to a record's set of names, and one set serves every
    record of the class (building one per record costs more than the rest of this)."""
    record = cls.__new__(cls)
    _object_setattr(record, "__dict__", fields)
    _object_setattr(record, "__pydantic_fields_set__", names)
    _object_setattr(record, "__pydantic_extra__", None)
    _object_setattr(record, "__pydantic_private__", None)
    return record


def assemble_validated(cls: Any, fields: dict[str, Any], names: set[str]) -> Any:
    """The same record through pydantic's public path."""
    return cls.model_validate(fields)


def use_pydantic() -> None:
    """streams.assembly builds records with pydantic's ``model_validate``."""
    from streams import assembly

    assembly._assemble = assemble_validated


def use_fast_assembly() -> None:
    """streams.assembly builds records with its fast assembler (the default)."""
    from streams import assembly

    if assembly._assemble is assemble_validated:
        assembly._assemble = assembly.FAST_ASSEMBLE
