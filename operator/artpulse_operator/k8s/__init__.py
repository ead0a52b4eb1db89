"""The operator's Kubernetes I/O: REST client, applying owned objects, status, Events.

Called by ``artpulse_operator.handlers``; the decisions come from the pure ``engine``.
"""
