"""Records read and built past pydantic's own machinery:

- input records assembled without validation: the fields, already checked against
  every constraint in plain code (streams.assembly), written straight into a new model
  instance, with the private instance fields pydantic keeps beside them
  (``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``: the
  slots of ``BaseModel``, which streams.framework.gate checks). The C extension's
  ``assemble`` writes the same four, in a quarter of the time;
- attribute reads of a record class without private attributes or extras going
  straight to the generic lookup, not through pydantic's ``__getattr__`` hook, which
  only serves those (the C extension's ``plain_getattr``, :func:`plain_attribute_reads`).

With the framework patches off, :func:`use_pydantic` undoes both: streams.assembly
builds records with pydantic's own ``model_validate``, and every record class reads
attributes through pydantic's hook again.

Imports no Faust, mode or aiokafka: the runner client reaches it through the records.
"""

from __future__ import annotations

from typing import Any

_object_setattr = object.__setattr__
# record classes whose attribute reads skip pydantic's __getattr__ hook, and those put
# back on it by use_pydantic
_plain_classes: list[type] = []
_hooked_classes: list[type] = []


def plain_attribute_reads(cls: Any) -> None:
    """Attribute reads of ``cls``'s instances skip pydantic's ``__getattr__`` hook, when
    the C extension is there and ``cls`` has neither private attributes nor extras (the
    only reads the hook serves): agents read a dozen fields an event."""
    from streams import avrodecode

    if (avrodecode.extension is not None and not cls.__private_attributes__
            and cls.model_config.get("extra") == "forbid"):
        avrodecode.extension.plain_getattr(cls)
        _plain_classes.append(cls)


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
    """streams.assembly builds records with pydantic's ``model_validate``, and record
    classes read attributes through pydantic's hook (setting ``__getattr__`` on a class
    makes CPython put the hook back in its type slot)."""
    from pydantic import BaseModel

    from streams import assembly

    assembly._assemble = assemble_validated
    for cls in _plain_classes:
        type.__setattr__(cls, "__getattr__", BaseModel.__getattr__)
    _hooked_classes.extend(_plain_classes)
    _plain_classes.clear()


def use_fast_assembly() -> None:
    """streams.assembly builds records with its fast assembler, and record classes read
    attributes plainly (the default)."""
    from streams import assembly

    if assembly._assemble is assemble_validated:
        assembly._assemble = assembly.FAST_ASSEMBLE
    hooked = list(_hooked_classes)
    _hooked_classes.clear()
    for cls in hooked:
        plain_attribute_reads(cls)
