"""Test harness: separate hosts (network namespaces) with their own services, for integration and
end-to-end tests."""
