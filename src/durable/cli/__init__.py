"""The ``durable`` command: inspecting and operating runs from a shell.

The room for the operator's command line; built on the public API only.
"""
