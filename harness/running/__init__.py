"""Many runs at once: `reproduce` trains and evaluates a whole profile (with worker processes),
`verify` checks a fresh reproduction against the committed reference. May import every layer
below it; only `harness.cli` imports it.
"""
