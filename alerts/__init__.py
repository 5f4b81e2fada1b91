"""Alert lifecycle, store, outbox and delivery (issue: alerts). Imports ``detectors`` findings only.

The alert value (`model.py`) is here; lifecycle, store and delivery come next.
"""
