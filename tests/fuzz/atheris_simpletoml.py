"""atheris harness for the ``simpletoml`` fuzz target (:func:`tests.fuzz.targets.TARGETS`)."""

from tests.fuzz.harness import main

if __name__ == "__main__":
    main("simpletoml")
