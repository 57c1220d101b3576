import pytest

from kerahep.errors import KerahepError
from kerahep.registry import get_task, list_tasks, register_task
from kerahep.tasks.base import Task


def test_builtin_tasks_registered():
    assert "dy_electron" in list_tasks()
    assert get_task("dy_electron").name == "dy_electron"


def test_unknown_task_lists_known_and_suggests():
    with pytest.raises(KerahepError) as exc:
        get_task("dy_electorn")
    msg = str(exc.value)
    assert "unknown task 'dy_electorn'" in msg and "dy_electron" in msg and "Did you mean 'dy_electron'" in msg


def test_register_a_user_task_by_writing_one_module():
    @register_task
    class Toy(Task):
        name = "toy_task_for_registry_test"

    assert get_task("toy_task_for_registry_test").__class__ is Toy
    with pytest.raises(KeyError):
        @register_task
        class Other(Task):
            name = "toy_task_for_registry_test"


def test_task_names_cannot_escape_output_dir():
    with pytest.raises(KerahepError):
        @register_task
        class Bad(Task):
            name = "../evil"


def test_unknown_preset():
    with pytest.raises(KerahepError, match="presets: physics, seed"):
        get_task("dy_electron").preset("phsyics")
