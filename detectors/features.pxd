# Cython declarations augmenting features.py when it is compiled (setup.py): the engine calls
# tx_features through C (detectors/engine.pxd), and tx_features its helpers. The .py stays the
# one source and runs as it is when not compiled (tests/test_compiled.py).
from libc cimport math  # the .py's math.log1p is C's (the same libm, same values)

cpdef dict tx_features(object tx, object ctx=*)
cpdef object _calldata_overflow_words(object data)
cpdef trace_features(object tx, object frame, dict out, object producer=*)
cpdef log_features(object tx, dict out)
cpdef tuple _value_flow(object moves, object me)
