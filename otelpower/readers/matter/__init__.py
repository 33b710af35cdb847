"""Matter reader: plugs through a Matter controller server's WebSocket API."""
