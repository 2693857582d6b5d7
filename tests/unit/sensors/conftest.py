from tests.unit.triggers.conftest import task_log  # noqa: F401
