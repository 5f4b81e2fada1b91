# Cython declarations augmenting fusion.py when it is compiled (setup.py): what the engine calls
# for every transaction is called through C (detectors/engine.pxd). The .py stays the one source.
cimport cython
from libc cimport math  # the .py's math.exp and math.log10 are C's (the same libm, same values)

cdef class Fuser:
    cdef public dict weights, calibrators
    cdef public object evidence, scale, apart

    cpdef tuple fuse_evidence(self, str name, double value)


@cython.locals(y=double, t=double, i=cython.longlong, k=double, d=double)
cpdef double round6(double x, object _round=*)
