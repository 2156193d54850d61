"""atheris harness for the ``tdx`` fuzz target (:func:`tests.fuzz.targets.TARGETS`)."""

from tests.fuzz.harness import main

if __name__ == "__main__":
    main("tdx")
