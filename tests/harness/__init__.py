"""The test harness: real services (containerd, registry, swtpm), real images and the real cosign,
started once per test session and torn down after. See tests/conftest.py for the fixtures."""
