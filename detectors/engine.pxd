# Cython declarations augmenting engine.py when it is compiled (setup.py): the engine's parts are
# C attributes, and what it calls for every transaction in the other compiled modules is called
# through C (their .pxd files), not through Python calls. The .py stays the one source and runs as
# it is when not compiled; both builds give the same scores (tests/test_compiled.py).
from detectors.features cimport tx_features
from detectors.fusion cimport Fuser, round6
from detectors.online cimport EntityState
from detectors.wallets cimport WalletBehaviour


cdef class ScoringEngine:
    cdef public object config, rules, detectors, policy, scored
    cdef public EntityState entities
    cdef public Fuser fuser
    cdef public WalletBehaviour wallet
