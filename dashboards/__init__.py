"""Grafana dashboards kept as code (see ``dashboards.build``); not part of the wheel: only
the JSON they render is deployed."""
