# C implementations of ingest/_hex.py for the compiled mappers (ingest/mappers.pxd cimports this,
# and mappers.py's `_hex.hexint(...)` and `_hex.lower(...)` then call these). Same results as the
# Python functions for every str (tests/test_compiled.py): anything but the common case is handed
# to the very Python operation they stand for.

cdef inline object hexint(str v):
    """int(v, 16): 0x and up to 16 hex digits are read here, anything else by int()."""
    cdef Py_ssize_t n = len(v), i
    cdef unsigned long long acc = 0
    cdef unsigned int c  # a code point, as a number
    if n < 3 or n > 18 or v[0] != u'0' or v[1] != u'x':
        return int(v, 16)
    for i in range(2, n):
        c = <unsigned int>(<Py_UCS4>v[i])
        if 48 <= c <= 57:  # 0-9
            acc = (acc << 4) | (c - 48)
        elif 97 <= c <= 102:  # a-f
            acc = (acc << 4) | (c - 87)
        elif 65 <= c <= 70:  # A-F
            acc = (acc << 4) | (c - 55)
        else:
            return int(v, 16)
    return acc


cdef inline str lower(str s):
    """s.lower(): s itself when it has no upper-case or non-ASCII character."""
    cdef Py_UCS4 ch
    cdef unsigned int c
    for ch in s:
        c = <unsigned int>ch
        if (65 <= c <= 90) or c > 127:  # A-Z, or not ASCII
            return s.lower()
    return s


cdef inline bint has0x(str v):
    """v[:2] == "0x", without making the slice."""
    return len(v) >= 2 and v[0] == u'0' and v[1] == u'x'
