"""Regenerate deploy/grafana/dashboards/*.json: ``python -m dashboards``."""

from dashboards.build import Lake, write

for path in write(Lake.default()):
    print(path)
