"""Images: references, OCI structures, the registry, containerd's API, the platform choice, rootfs chains."""
