"""``chinwag chat``: a terminal chat client built on the SDK (Textual).

:mod:`~chinwag.tui.render` turns SDK objects into Rich ``Text`` (never markup, so a
message body like ``[red]x`` shows literally); :mod:`~chinwag.tui.signin` holds the
identity-token providers a terminal can use; :mod:`~chinwag.tui.app` is the Textual app.
Importing this package does not import Textual (the demo uses ``signin`` without it).
"""

__all__: list[str] = []
