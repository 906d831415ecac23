"""The browser client's files (index.html, chinwag.js, app.js, style.css), served by
``chinwag.server.api.web``. Plain JavaScript modules: there is no build step."""

__all__: list[str] = []
