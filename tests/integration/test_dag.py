"""Ray's DAG API (``jray.dag``), as Ray's documentation describes it: graphs
of tasks and actor calls built with ``.bind``, run with ``.execute``; the
input node and its parts; several outputs; options; a node used twice runs
once per execution; compiled graphs reuse their actors until torn down."""

from __future__ import annotations

import pytest

import jray
from jray.dag import InputNode, MultiOutputNode


@pytest.fixture(autouse=True)
def cluster(jray_cluster):
    yield


@jray.remote
def add(a, b):
    return a + b


@jray.remote
def total(xs):
    # as in Ray, refs inside a list arrive as refs (only top-level arguments are resolved)
    return sum(jray.get(x) if isinstance(x, jray.ObjectRef) else x for x in xs)


@jray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def inc(self, by=1):
        self.n += by
        return self.n

    def get(self):
        return self.n


def test_a_function_graph_with_an_input():
    with InputNode() as inp:
        dag = add.bind(add.bind(inp, 1), inp)
    assert jray.get(dag.execute(10)) == 21
    assert jray.get(dag.execute(1)) == 3  # runs again, with the new input


def test_input_parts_by_position_and_keyword_and_nodes_in_lists():
    with InputNode() as inp:
        dag = total.bind([inp[0], add.bind(inp[1], 1), 100])
    assert jray.get(dag.execute(1, 2)) == 104
    with InputNode() as inp:
        dag = add.bind(inp.x, inp.y)
    assert jray.get(dag.execute(x=3, y=4)) == 7
    with InputNode() as inp:
        dag = add.bind(inp["a"], inp["b"])
    assert jray.get(dag.execute({"a": 1, "b": 2})) == 3


def test_actors_in_a_graph_and_several_outputs():
    with InputNode() as inp:
        c = Counter.bind(10)
        dag = MultiOutputNode([c.inc.bind(inp), add.bind(inp, inp)])
    assert jray.get(dag.execute(5)) == [15, 10]
    # each execute makes the graph's actor anew (a ClassNode is created when the graph runs)
    assert jray.get(dag.execute(1)) == [11, 2]


def test_a_method_of_an_existing_actor_and_options():
    c = Counter.remote()
    with InputNode() as inp:
        dag = c.inc.bind(add.options(num_cpus=0.5).bind(inp, 1))
    assert jray.get(dag.execute(1)) == 2
    assert jray.get(dag.execute(1)) == 4  # the same actor, its state kept
    assert dag._bound_args[0].get_options() == {"num_cpus": 0.5}


def test_a_node_used_twice_runs_once_per_execution():
    c = Counter.remote()
    with InputNode() as inp:
        once = c.inc.bind(inp)
        dag = add.bind(once, once)
    assert jray.get(dag.execute(1)) == 2  # inc ran once: 1 + 1
    assert jray.get(c.get.remote()) == 1


def test_execute_without_the_input_says_so():
    with InputNode() as inp:
        dag = add.bind(inp, 1)
    with pytest.raises(ValueError, match="pass its input to execute"):
        dag.execute()
    with InputNode() as inp:
        dag = add.bind(inp.x, 1)
    with pytest.raises(KeyError, match="inp.x"):
        dag.execute(1, y=2)


def test_a_compiled_graph_reuses_its_actors_until_torn_down():
    with InputNode() as inp:
        c = Counter.bind(0)
        dag = c.inc.bind(inp)
    compiled = dag.experimental_compile()
    assert [jray.get(compiled.execute(i)) for i in (1, 2, 3)] == [1, 3, 6]  # one actor, made at compile time
    actor = next(iter(compiled._actors.values()))
    compiled.teardown()
    with pytest.raises(RuntimeError, match="torn down"):
        compiled.execute(1)
    with pytest.raises(jray.exceptions.RayActorError):
        jray.get(actor.get.remote(), timeout=30)
