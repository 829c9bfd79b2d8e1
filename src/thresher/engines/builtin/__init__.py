"""The built-in engines, one module per application; each may be published on its own."""
