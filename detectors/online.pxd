# Cython declarations augmenting online.py when it is compiled (setup.py): the entity state is an
# extension class whose per-transaction methods the engine calls through C (detectors/engine.pxd).
# The .py stays the one source and runs as it is when not compiled (tests/test_compiled.py).
from libc cimport math  # the .py's math.log1p and math.sqrt are C's (the same libm, same values)

cdef class EntityState:
    cdef public object max_entities, max_selectors_per_contract, max_callers_per_contract
    cdef public object contracts, senders, selectors, created, seen

    cpdef observe(self, object tx, dict x, object now=*)
    cpdef learn(self, object tx, object frames=*, object now=*, object creates=*)


cpdef object _touch(object lru, object key, object default, object new=*)
