"""Google Drive (v3): files in the chosen folders and shared drives → documents, linked to accounts and deals by
name, with text fetched on demand. See `connectors.google_drive.connector`; `content.fetch_content` reads a
document's text. `register()` adds the connector and its post-sync linking step."""
from __future__ import annotations


def register():
    from connectors.google_drive.connector import register as _register

    return _register()
