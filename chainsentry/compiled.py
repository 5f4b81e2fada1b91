"""The modules compiled with Cython when the package is built: the one list (setup.py builds it,
the Makefile rebuilds a changed one, ``chainsentry --version`` reports on it). Compiling is a build
detail: every module is plain Python that runs as it is when not compiled, with the same results
(``tests/test_compiled.py``). Read without importing the package (setup.py executes this file)."""

COMPILED_MODULES = (
    "detectors.baseline",
    "detectors.engine",
    "detectors.entities",
    "detectors.features",
    "detectors.fusion",
    "detectors.online",
    "detectors.policy",
    "detectors.rules",
    "detectors.traversal",
    "detectors.units.counterfeit",
    "detectors.units.logs",
    "detectors.units.novelty",
    "detectors.units.protocols",
    "detectors.units.reentry",
    "detectors.units.takeover",
    "detectors.units.tokens",
    "detectors.units.transaction",
    "detectors.units.tree",
    "detectors.units.value_flow",
    "detectors.wallets",
    "ingest.mappers",
    "ingest.replay",
    "chainsentry.scoring",
)
