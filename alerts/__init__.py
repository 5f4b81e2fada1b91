"""Alert lifecycle, store, outbox and delivery (issue: alerts). Imports ``detectors`` findings only.

Not built yet.
"""
