"""``import jray as ray`` must offer Ray Core's public names."""

import jray

RAY_CORE = ["init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel", "kill", "get_actor",
            "get_runtime_context", "nodes", "cluster_resources", "available_resources", "get_gpu_ids", "method",
            "ObjectRef", "ObjectRefGenerator"]


def test_core_names_exported():
    missing = [n for n in RAY_CORE if n not in jray.__all__ or not hasattr(jray, n)]
    assert missing == []


def test_exceptions_module_has_ray_names():
    from jray import exceptions as e

    for name in ["RayError", "RayTaskError", "RayActorError", "ActorDiedError", "GetTimeoutError",
                 "TaskCancelledError", "ObjectLostError", "OwnerDiedError", "WorkerCrashedError",
                 "ObjectStoreFullError", "OutOfMemoryError", "UnserializableException", "RaySystemError",
                 "GcsUnavailableError"]:
        assert issubclass(getattr(e, name), e.RayError)
    assert issubclass(e.GetTimeoutError, TimeoutError)


def test_task_error_is_instance_of_cause_and_pickles():
    import pickle

    from jray.exceptions import RayTaskError

    err = RayTaskError("f", "Traceback...\nValueError: bad", ValueError("bad")).as_instanceof_cause()
    assert isinstance(err, ValueError) and isinstance(err, RayTaskError)
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ValueError) and "bad" in str(again)


def test_ray_modules_programs_import():
    import importlib

    cp = importlib.import_module("jray.cloudpickle")  # ray.cloudpickle
    assert cp.dumps and cp.loads and cp.register_pickle_by_value
    acc = importlib.import_module("jray.util.accelerators")  # ray.util.accelerators
    assert acc.NVIDIA_TESLA_V100 == "V100" and acc.NVIDIA_H100 == "H100" and "NVIDIA_A100" in acc.__all__
    from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    assert NodeAffinitySchedulingStrategy(b"\x01\x02", soft=True).node_id == "0102"
