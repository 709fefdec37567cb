"""Manila's v2 REST API over the services (falcon; ``create_app`` in :mod:`shareflow.api.app`)."""
