"""The web UI: an ASGI app that shows runs and operates them.

The room for the operator's browser surface; built on the public API only.
"""
