# Cython declarations augmenting features.py when it is compiled (setup.py): the engine calls
# tx_features through C (detectors/engine.pxd). The .py stays the one source.

cpdef dict tx_features(object tx, object ctx=*)
