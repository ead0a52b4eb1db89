"""HTTP routers of the inference server, one per area (included by ``app.create_app``)."""
