"""Wire-protocol adapters (one module per protocol, loaded by the router on first use).

Each adapter subclasses :class:`~vivace.models.protocols.base.HTTPModel`; see that module
for how to write one.
"""
