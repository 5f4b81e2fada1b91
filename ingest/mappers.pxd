# Cython declarations augmenting mappers.py when it is compiled (setup.py): the fast path's
# helpers are called as C functions within the module (no Python call per field). The .py stays
# the one source and runs as it is when not compiled; both builds map every line alike
# (tests/test_compiled.py).
from ingest cimport _hex  # hexint and lower in C (ingest/_hex.py is the Python they stand for)

cpdef object _hexq(object v)
cpdef object _q(object v)
cpdef object _fixed(object v, Py_ssize_t length)
cpdef object _addr(object v)
cpdef object _h32(object v)
cpdef object _log_fast(object raw)
cpdef object _receipt_fast(object raw)
cpdef object _block_fast(object raw)
cpdef object _tx_fast(object raw, object receipt, object trace, object _int=*, object _tx=*)
cpdef object _frame_fast(object raw, Py_ssize_t depth=*, object _int=*, object _frame=*)
cpdef object _frame_typed(object raw, Py_ssize_t depth=*, object _frame=*)
cpdef object _receipt_typed(object raw)
cpdef object _log_typed(object raw)
cpdef object _tx_typed(object raw, object receipt, object trace, object _tx=*)
cpdef object _block_typed(object raw)
