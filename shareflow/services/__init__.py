"""Services: what the API (and the CLI) can ask of the system.

Resources in ``shareflow.api`` only translate HTTP to calls here; these own
validation, authorisation by project, conditional status changes and job
posting. Clock and id generator are injected so tests need no patching.
"""
