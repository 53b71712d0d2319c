"""The HTTP surface: routes, request parsing, responses. Knows nothing of providers' wire formats."""
