"""Loopback emulator of TP-Link Kasa/Tapo plugs (KLAP v1/v2, AES, XOR) for python-kasa."""

from .profile import Profile, load_profile
from .server import EmulatedPlug, Fault, PlugOptions, Simulator, builtin_profiles, serve

__all__ = [
    "EmulatedPlug",
    "Fault",
    "PlugOptions",
    "Profile",
    "Simulator",
    "builtin_profiles",
    "load_profile",
    "serve",
]
