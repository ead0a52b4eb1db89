"""The pure decision logic of the operator: no kopf, kubernetes, HTTP or MLflow imports.

Called by ``artpulse_operator.handlers``: ``spec`` parses the resource, ``desired`` renders the
owned objects, ``weights`` does the traffic arithmetic, ``rollout``/``gates`` decide the next status.
"""
