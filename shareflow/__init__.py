"""shareflow: NFS shares for tenants, provisioned by reversible TaskFlow jobs."""
