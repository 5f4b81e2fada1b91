"""Scoring: feature extraction, online detectors, fusion, explanations (issue: detection).

Imports the event types of ``ingest`` only. Not built yet: the pipeline passes events through.
"""
