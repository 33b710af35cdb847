"""``otelpower compare``: native vs Matter from a Prometheus-compatible backend.

``query`` talks to the HTTP API, ``analysis`` is pure arithmetic on series, ``collect``
gathers one device's data, ``charts`` draws PNGs (matplotlib, the ``report`` extra) and
``report`` writes the markdown; ``command`` ties them together for the CLI.
"""
