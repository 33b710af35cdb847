"""Development helpers shared by tests/ and bench/ (not part of the otelpower package).

ports (free_port), wait (wait_for, wait_for_sync), processes (Process, cli_process),
backends (VictoriaMetrics, Collector), promtext (parse/scrape /metrics), otlp (Receiver),
telemetry (the export pipeline over a store a test fills).
"""
