# Cython declarations augmenting wallets.py when it is compiled (setup.py): the profile's counters
# are C fields, read without a dictionary or a slot descriptor. The .py stays the one source and
# runs as it is when not compiled; both builds give the same floats (tests/test_compiled.py) and
# pickle alike (Profile's __reduce__; tests/test_detectors.py).
from libc cimport math  # the .py's math.log1p and math.exp are C's (the same libm, same values)
cimport cython

cdef class Profile:
    cdef public long long contract_calls_out, failed_out, ins, outs, plain_in, n_recv_from, n_sent_to
    cdef public double first, last, value_in, value_out
    cdef public object funder
    cdef public set recv_from, sent_to


cdef class WalletBehaviour:
    cdef public long long max_wallets, max_counterparties
    cdef public object _profiles

    @cython.locals(p=Profile)
    cpdef Profile _get(self, str address, double now)

    @cython.locals(p=Profile, q=Profile, value=double, cap=cython.longlong, ok=bint)
    cpdef learn_tx(self, object tx, double now, object value_eth=*)

    @cython.locals(p=Profile, total=double, small=double, span=double, burst=double, forwarded=double,
                   log101=double, log_year=double, lo=double, hi=double)
    cpdef double score(self, str address)


cpdef double _squash(double x)
