"""Native reader: TP-Link Kasa/Tapo plugs straight on the LAN, with python-kasa."""
