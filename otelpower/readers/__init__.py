"""Readers: one module per vendor/protocol, each feeding a SnapshotStore."""
