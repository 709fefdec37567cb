"""Manila's JSON for our rows, one module per resource (manila/api/views/*).

Views are pure functions of a row and a :class:`~shareflow.api.views.common.ViewContext`
(microversion, admin or not, link prefix), so field gating is unit-testable.
"""
