"""authentik blueprint YAML import and export, shaped like authentik's blueprints/v1.

- loader.py: the safe YAML loader, authentik's tags and the size bounds;
- report.py: what an import did or would do;
- handlers.py: one handler per model (the stage handler is generic over stage declarations);
- importer.py: checks, ordering and the one transaction;
- exporter.py: a flow back to YAML.
"""

from .exporter import export_flow, flow_by_slug
from .importer import Importer, import_blueprint
from .loader import MAX_BLUEPRINT_BYTES, BlueprintError, BlueprintLoader, parse
from .report import Change, ImportReport

__all__ = ["MAX_BLUEPRINT_BYTES", "BlueprintError", "BlueprintLoader", "Change", "ImportReport",
           "Importer", "export_flow", "flow_by_slug", "import_blueprint", "parse"]
