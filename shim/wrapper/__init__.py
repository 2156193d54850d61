"""The ``nerdctl`` wrapper: its entry, nerdctl's argv grammar, the caller, and the exec of the real nerdctl."""
