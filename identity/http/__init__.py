"""The identity HTTP services: routes plugged into a validator's API and the issuer service.

The only identity code that may import :mod:`node` or FastAPI (``tests/architecture.py``).
"""
