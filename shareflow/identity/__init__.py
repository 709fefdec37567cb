"""The built-in identity: a Keystone v3 compatible service for the OpenStack
clients that authenticate with a user, a password (or an application
credential) and a project. Keys (:mod:`.keys`), the token format
(:mod:`.tokens`) and secret hashing (:mod:`.hashing`) live here; the logic is
:mod:`shareflow.services.identity`, the routes :mod:`shareflow.api.resources.identity`.
"""
