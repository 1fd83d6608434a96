"""Drives the local model through its `juju` with jubilant (run by tests/jubilant.rs).

Usage: drive.py <model> <ops-peer charm> <db-provider charm> <db-requirer charm>
"""

import sys

import jubilant

model, peer_charm, provider_charm, requirer_charm = sys.argv[1:5]

juju = jubilant.Juju()
juju.add_model(model)
assert juju.model == model
assert juju.version().major == 3

juju.deploy(peer_charm, "peer", num_units=2, config={"greeting": "hi"})
status = juju.wait(
    lambda s: jubilant.all_active(s)
    and s.apps["peer"].units["peer/1"].workload_status.message == "has the token",
    delay=0.2,
    timeout=120,
)
assert status.apps["peer"].units["peer/0"].leader
assert status.apps["peer"].app_status.message == "leading"

juju.config("peer", {"greeting": "hey"})
assert juju.config("peer")["greeting"] == "hey"
juju.wait(
    lambda s: s.apps["peer"].units["peer/0"].workload_status.message == "greeting hey",
    delay=0.2,
    timeout=60,
)

juju.add_unit("peer")
status = juju.wait(
    lambda s: len(s.apps["peer"].units) == 3 and jubilant.all_active(s),
    delay=0.2,
    timeout=120,
)
juju.remove_unit("peer/2")
juju.wait(lambda s: set(s.apps["peer"].units) == {"peer/0", "peer/1"}, delay=0.2, timeout=60)

task = juju.run("peer/0", "greet", {"name": "jubilant"})
assert task.results == {"greeting": "hey jubilant"}, task
assert task.log == ["greeting jubilant"], task
try:
    juju.run("peer/leader", "greet", {"fail": True})
    raise AssertionError("the action should have failed")
except jubilant.TaskError as e:
    assert e.task.status == "failed" and e.task.message == "asked to fail", e.task

task = juju.exec("is-leader", unit="peer/1")
assert task.stdout == "False\n", task
task = juju.exec("config-get greeting && relation-ids replicas", unit="peer/0")
assert task.stdout == "hey\nreplicas:1\n", task
try:
    juju.exec("exit 3", unit="peer/0")
    raise AssertionError("the command should have failed")
except jubilant.TaskError as e:
    assert e.task.return_code == 3, e.task

juju.deploy(provider_charm, "provider")
juju.deploy(requirer_charm, "requirer")
juju.integrate("provider", "requirer")
status = juju.wait(
    lambda s: s.apps["requirer"].units["requirer/0"].workload_status.current == "active",
    error=jubilant.any_error,
    delay=0.2,
    timeout=120,
)
assert status.apps["requirer"].relations["database"][0].related_app == "provider"
info = juju.show_unit("requirer/0")
[rel] = [r for r in info.relation_info if r.endpoint == "database"]
assert rel.related_endpoint == "database" and "provider/0" in rel.related_units, rel
assert "endpoints" in rel.app_data, rel.app_data

juju.destroy_model(model, destroy_storage=True)
print("jubilant drove the local model")
