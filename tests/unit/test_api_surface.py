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


def test_import_jray_reaches_util_and_ray_type_hint_names():
    import jray._raylet as raylet
    from jray.actor import ActorClass, ActorHandle, ActorProxy

    assert jray.util.ActorPool is not None  # ray.util after a bare import
    assert raylet.ObjectRefGenerator is jray.ObjectRefGenerator and raylet.ObjectRef is jray.ObjectRef
    assert jray.ObjectRef[int].__origin__ is jray.ObjectRef
    assert ActorClass[int].__origin__ is ActorClass and ActorProxy[int].__origin__ is ActorHandle


def test_inspect_serializability_names_the_culprit():
    import io
    import threading

    from jray.util import inspect_serializability

    lock = threading.Lock()

    def uses_lock():
        return lock

    out = io.StringIO()
    ok, failures = inspect_serializability(uses_lock, name="uses_lock", print_file=out)
    assert not ok and [f.name for f in failures] == ["lock"]
    assert "non-serializable member 'lock'" in out.getvalue()
    assert inspect_serializability({"a": [1, 2]}, print_file=io.StringIO()) == (True, set())


def test_dag_api_names():
    """Ray's DAG API: ``ray.dag`` and ``.bind`` on functions, actor classes and methods."""
    import jray.dag as dag

    for name in ["DAGNode", "InputNode", "InputAttributeNode", "MultiOutputNode", "FunctionNode", "ClassNode",
                 "ClassMethodNode"]:
        assert hasattr(dag, name) and name in dag.__all__
    assert jray.dag is dag

    @jray.remote
    def f(x):
        return x

    @jray.remote
    class A:
        def m(self):
            return 1

    assert isinstance(f.bind(1), dag.FunctionNode) and isinstance(f.options(num_cpus=0).bind(1), dag.FunctionNode)
    assert isinstance(A.bind(), dag.ClassNode) and isinstance(A.bind().m.bind(), dag.ClassMethodNode)
    assert callable(dag.InputNode().experimental_compile)


def test_metrics_tqdm_ray_and_experimental_names():
    """``ray.util.metrics`` and ``ray.experimental.tqdm_ray`` as Ray programs import them."""
    from jray.util.metrics import Counter, Gauge, Histogram, Metric

    assert issubclass(Counter, Metric) and issubclass(Gauge, Metric) and issubclass(Histogram, Metric)
    assert Counter("x", description="d", tag_keys=("a",)).info["tag_keys"] == ("a",)
    from jray.experimental.tqdm_ray import safe_print, tqdm

    assert callable(tqdm) and callable(safe_print)
    assert jray.experimental.tqdm_ray.tqdm is tqdm
    from jray.util.state import list_metrics

    assert callable(list_metrics)
