"""The e2e package: a package, so that its conftest's package-scoped cluster install is
torn down after its last test (pytest scopes "package" to the session in a plain directory)."""
