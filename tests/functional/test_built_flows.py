"""A conductor builds and compiles each kind of flow once
(``shareflow.engine.loading.BuiltFlows``) and lends it to its jobs one at a
time, over TaskFlow's persistence on our real databases: every job still
runs from its own flow detail, a job resumed on a reused flow skips exactly
the steps recorded done, and nothing a conductor set on a task for one job
is left for the next."""

from __future__ import annotations

import contextlib

import pytest
from oslo_utils import uuidutils
from taskflow import engines, task
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow.engines.action_engine import compiler as tf_compiler
from taskflow.patterns import linear_flow
from taskflow.persistence import models as tf_models

from shareflow.engine.loading import BuiltFlows
from shareflow.engine.persistence import make_persistence
from shareflow.engine.storage import ShareflowEngine
from shareflow.flows.create_share import create_share
from shareflow.flows.delete_share import delete_share

STEPS = ("one", "two", "three")
#: The factory calls made, by label.
BUILDS: list[str] = []


class Crash(BaseException):
    """The conductor's process dies here (TaskFlow's notifier swallows an Exception)."""


class Step(task.Task):
    def execute(self, ran):
        ran.append(self.name)
        return self.name


def counted(label: str = "a"):
    """A flow factory, named in the flow details as a posted job's is."""
    BUILDS.append(label)
    return linear_flow.Flow("f").add(*(Step(n) for n in STEPS))


@pytest.fixture
def persistence(db):
    BUILDS.clear()
    return make_persistence(db)


def posted(persistence, factory=counted, **kwargs) -> str:
    book = tf_models.LogBook("b", uuid=uuidutils.generate_uuid())
    fd = tf_models.FlowDetail("f", uuid=uuidutils.generate_uuid())
    book.add(fd)
    engines.save_factory_details(fd, factory, [], kwargs)
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    return fd.uuid


def reload(persistence, flow_uuid):
    with contextlib.closing(persistence.get_connection()) as conn:
        return conn.get_flow_details(flow_uuid)


def states_of(persistence, flow_uuid) -> dict:
    return {ad.name: ad.state for ad in reload(persistence, flow_uuid) if ad.name in STEPS}


def engine_of(persistence, flow_uuid, lent, ran) -> ShareflowEngine:
    flow, compiler = lent
    engine = ShareflowEngine(flow, reload(persistence, flow_uuid), persistence, {}, compiler=compiler)
    engine.storage.inject({"ran": ran}, transient=True)
    engine.compile()
    engine.prepare()
    engine.validate()
    return engine


def test_each_flow_is_built_and_compiled_once_for_every_job_of_its_kind(persistence):
    flows = BuiltFlows()
    compilations, flows_seen = set(), set()
    jobs = [posted(persistence) for _ in range(3)]
    for flow_uuid in jobs:
        ran: list[str] = []
        with flows.lend(reload(persistence, flow_uuid)) as lent:
            engine = engine_of(persistence, flow_uuid, lent, ran)
            engine.run()
        assert ran == list(STEPS)
        compilations.add(id(engine.compilation))
        flows_seen.add(id(lent[0]))
    # One factory call and one compilation for the three jobs...
    assert BUILDS == ["a"] and flows.built == 1
    assert len(compilations) == 1 and len(flows_seen) == 1
    # ... each of which ran and was recorded on its own flow detail.
    for flow_uuid in jobs:
        assert reload(persistence, flow_uuid).state == tf_states.SUCCESS
        assert set(states_of(persistence, flow_uuid).values()) == {tf_states.SUCCESS}
    # Another factory call (other arguments) is another flow.
    flow_uuid = posted(persistence, label="b")
    with flows.lend(reload(persistence, flow_uuid)) as lent:
        engine_of(persistence, flow_uuid, lent, []).run()
    assert BUILDS == ["a", "b"] and flows.built == 2


def test_the_services_flows_are_kept_per_factory_call(persistence):
    flows = BuiltFlows()
    details = {(factory, dhss): reload(persistence, posted(persistence, factory, **kwargs))
               for factory in (create_share, delete_share)
               for dhss, kwargs in ((False, {}), (True, {"driver_handles_share_servers": True}))}
    lent = {}
    for _round in range(2):
        for key, fd in details.items():
            with flows.lend(fd) as (flow, compiler):
                assert lent.setdefault(key, flow) is flow
                assert compiler.compile().execution_graph.number_of_nodes() >= 8
    assert flows.built == 4


def test_a_flow_lent_out_is_not_lent_to_a_second_job(persistence):
    flows = BuiltFlows()
    fd = reload(persistence, posted(persistence))
    with flows.lend(fd) as (first, _), flows.lend(fd) as (second, _):
        assert first is not second
    assert flows.built == 2


def test_what_a_conductor_set_on_a_task_for_a_job_is_gone_when_it_is_lent_again(persistence):
    """The conductor's cancel check (``pre_execute``) belongs to one job."""
    flows = BuiltFlows()
    first, second = posted(persistence), posted(persistence)

    def cancelled():
        raise RuntimeError("job one was cancelled")

    with flows.lend(reload(persistence, first)) as lent:
        first_flow = lent[0]
        engine = engine_of(persistence, first, lent, [])
        for atom, data in engine.compilation.execution_graph.nodes(data=True):
            if data["kind"] in tf_compiler.ATOMS:
                atom.pre_execute = cancelled
        with pytest.raises(RuntimeError, match="job one was cancelled"):
            engine.run()
    assert reload(persistence, first).state == tf_states.REVERTED

    ran: list[str] = []
    with flows.lend(reload(persistence, second)) as lent:
        assert lent[0] is first_flow
        engine_of(persistence, second, lent, ran).run()
    assert flows.built == 1
    assert ran == list(STEPS)
    assert reload(persistence, second).state == tf_states.SUCCESS


def test_a_job_resumed_on_a_reused_flow_skips_exactly_the_steps_recorded_done(persistence):
    """Suspended after step two (its claim lost): the flow goes back to the
    conductor's flows with the job half done; the job, resumed on that same
    flow object, runs step three only. Killed after step two finished but
    before it was recorded: another conductor's flows build it afresh, and
    the job runs two again, then three - and that conductor's next job runs
    every step on the flow it keeps."""
    flows = BuiltFlows()
    flow_uuid = posted(persistence)
    ran: list[str] = []
    with flows.lend(reload(persistence, flow_uuid)) as lent:
        engine = engine_of(persistence, flow_uuid, lent, ran)

        def lose_claim_after_two(state, details):
            if details["task_name"] == "two":
                engine.suspend()

        engine.atom_notifier.register(tf_states.SUCCESS, lose_claim_after_two)
        engine.run()
        first_flow = lent[0]
    assert ran == ["one", "two"]
    assert states_of(persistence, flow_uuid) == {
        "one": tf_states.SUCCESS, "two": tf_states.SUCCESS, "three": tf_states.PENDING}

    ran = []
    with flows.lend(reload(persistence, flow_uuid)) as lent:
        assert lent[0] is first_flow
        engine_of(persistence, flow_uuid, lent, ran).run()
    assert ran == ["three"]
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS

    # Killed: step two finished, its SUCCESS not yet written.
    killed = posted(persistence)
    ran = []
    with pytest.raises(Crash), flows.lend(reload(persistence, killed)) as lent:
        engine = engine_of(persistence, killed, lent, ran)

        def die_after_two(state, details):
            if details["task_name"] == "two":
                raise Crash()

        engine.atom_notifier.register(tf_states.SUCCESS, die_after_two)
        engine.run()
    assert ran == ["one", "two"]
    assert states_of(persistence, killed) == {
        "one": tf_states.SUCCESS, "two": tf_states.RUNNING, "three": tf_states.PENDING}

    other_conductor = BuiltFlows()
    ran = []
    with other_conductor.lend(reload(persistence, killed)) as lent:
        engine_of(persistence, killed, lent, ran).run()
    assert ran == ["two", "three"]
    assert reload(persistence, killed).state == tf_states.SUCCESS
    fresh, ran = posted(persistence), []
    with other_conductor.lend(reload(persistence, fresh)) as lent:
        engine_of(persistence, fresh, lent, ran).run()
    assert ran == list(STEPS) and other_conductor.built == 1


def test_an_engine_takes_only_its_own_flows_compiler(persistence):
    flows = BuiltFlows()
    flow_uuid = posted(persistence)
    with flows.lend(reload(persistence, flow_uuid)) as (_flow, compiler):
        with pytest.raises(ValueError, match="not the flow's"):
            ShareflowEngine(counted(), reload(persistence, flow_uuid), persistence, {}, compiler=compiler)


def test_an_engine_is_validated_once_though_asked_twice(persistence):
    """The conductor validates a job's engine as it loads it, then TaskFlow's
    dispatch asks again: the arguments are looked up once."""
    flows = BuiltFlows()
    flow_uuid = posted(persistence)
    with flows.lend(reload(persistence, flow_uuid)) as (flow, compiler):
        engine = ShareflowEngine(flow, reload(persistence, flow_uuid), persistence, {}, compiler=compiler)
        lookups = []
        fetch = engine.storage.fetch_unsatisfied_args

        def counted_fetch(*args, **kwargs):
            lookups.append(args[0])
            return fetch(*args, **kwargs)

        engine.storage.fetch_unsatisfied_args = counted_fetch
        engine.compile()
        engine.prepare()
        # Without its store the flow cannot run: refused, every time.
        for _ in range(2):
            with pytest.raises(tf_exc.MissingDependencies):
                engine.validate()
        assert len(lookups) == 2 * 2 * len(STEPS)  # execute and revert arguments, twice
        engine.storage.inject({"ran": []}, transient=True)
        lookups.clear()
        engine.validate()
        engine.validate()
        assert len(lookups) == 2 * len(STEPS)
        engine.run()
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS
