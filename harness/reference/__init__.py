"""Reference models the project builds itself from packaged weights (see ``python -m harness.reference``)."""
