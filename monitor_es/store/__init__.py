"""Redis persistence: key names, Functions, log append and read, leases."""
