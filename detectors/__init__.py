"""Scoring: feature units over each transaction, the detectors that score them, fusion into one
score, and the finding policy that decides what alerts (see the README's Detection section).

Imports the event types of ``ingest`` only.
"""
