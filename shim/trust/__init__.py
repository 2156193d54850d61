"""Who vouches for an image: signatures, keys, keyless identities, scopes, signing, the signature cache."""
