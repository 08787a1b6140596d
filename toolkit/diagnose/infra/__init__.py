"""Infrastructure-pathway diagnostics: latency, capacity, memory, cold starts, hosts, accelerators."""
