"""Alert lifecycle, store, outbox and delivery. Imports ``detectors`` findings only.

``model`` (the alert value and its deterministic id), ``lifecycle`` (firing, confirmed, retracted;
cooldown), ``store`` (SQLite alerts, outbox, subscriptions, feedback), ``subscriptions`` (config
and API subscriptions), ``channels`` (payloads per destination) and ``webhook`` (signed delivery
with retries, dead letters and rate limits).
"""
