# Cython declarations augmenting mappers.py when it is compiled (setup.py): the scalar checks and
# the per-entity converters are called as C functions within the module (no Python call per
# field). The .py stays the one source and runs as it is when not compiled; both builds map every
# line alike (tests/test_compiled.py).
from ingest cimport _hex  # hexint and lower in C (ingest/_hex.py is the Python they stand for)

cpdef object quantity(object value, str field)
cpdef object address(object value, str field)
cpdef object hash32(object value, str field)
cpdef object data(object value, str field)
cpdef object _opt_str(object value, str field)
cpdef object _hashes(object value, str field)
cpdef object _frame(object raw, Py_ssize_t depth=*)
cpdef object _log(object raw)
cpdef object _receipt(object raw)
cpdef object _tx(object raw, object receipt, object trace)
cpdef object _header(object raw)
cpdef object _number(object value)
cpdef object _block(object raw)
