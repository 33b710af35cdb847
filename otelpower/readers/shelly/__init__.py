"""Shelly Gen2+ devices on the LAN (plugs, relays and meters), read with aioshelly."""
