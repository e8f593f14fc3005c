"""The HTML face's helpers: the Jinja environment (``views``), the Markdown renderer (``render``)
and the SVG plots (``plots``)."""
