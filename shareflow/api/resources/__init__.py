"""Falcon resources: translate HTTP to service calls and service results to views.

They hold no rules of their own beyond what Manila's API layer decides
(microversion gates, policy on public shares, request-body shapes).
"""
