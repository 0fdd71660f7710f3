"""Integrations with other libraries (Pydantic AI, FastAPI, task queues), each an extra.

Built on the public API only; importing ``durable`` never imports these.
"""
