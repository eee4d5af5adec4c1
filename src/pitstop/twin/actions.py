"""Long-running actions in the twin: what starting one does at once, and what happens when it
ends (``begin`` and ``finish``). Durations are drawn from the twin's timings, keyed by the
operation's key, so a resumed twin finishes each operation at the same virtual time.

=========================  ======================================================================
UpgradeComponent on a node  kubelet, containerd, cri-o, docker: the node is NotReady from the
                            start until the end (``node_restart``); containers survive a kubelet
                            or containerd restart and restart with any other runtime. kube-proxy:
                            a short restart, the node stays Ready. Faults: ``nodeNeverReady``
                            (the upgrade succeeds, the node stays NotReady),
                            ``runtimeUpgradeFails`` (FAILED, old runtime back, node Ready).
kube-apiserver instance     not serving during ``apiserver_restart``
controllers                 kube-controller-manager / kube-scheduler / cloud-controller-manager:
                            target an instance, or the component's name for all instances
etcd member                 unhealthy during ``etcd_member_restart``; a restarting leader hands
                            leadership to the first healthy member
control-plane               the provider's managed upgrade (target: the cluster's name)
add-on                      target and component: the add-on's name (``addon_rollout``)
AddNode                     appears NotReady with the pool's allocatable; Ready after
                            ``node_provisioning``; DaemonSet pods bound to it at once
RemoveNode                  NotReady and cordoned at once; after ``node_removal`` the node and
                            its pods are gone (controllers replace what they own)
EtcdSnapshot / EtcdRestore  a snapshot records the etcd version; a restore takes every member
                            (so the API) down for ``etcd_restore``, then runs ``version``
=========================  ======================================================================

An action that cannot apply (unknown node, runtime mismatch, no such snapshot) FAILS at once
with a message: it is the fleet's answer, not a broken call.
"""

from __future__ import annotations

from pitstop.backend import (
    AddNode,
    EtcdRestore,
    EtcdSnapshot,
    OperationState,
    RemoveNode,
    UpgradeComponent,
)
from pitstop.twin.state import NodeState, OpState
from pitstop.twin.timings import Span, uniform
from pitstop.twin.world import World
from pitstop.versions import parse_version

__all__ = ["begin", "finish"]

RUNTIMES = frozenset({"containerd", "cri-o", "docker"})
NODE_COMPONENTS = RUNTIMES | {"kubelet", "kube-proxy"}
CONTROLLERS = {"kube-controller-manager": "controller_manager", "kube-scheduler": "scheduler",
               "cloud-controller-manager": "cloud_controller_manager"}


class Refused(Exception):
    """The action cannot apply; the operation fails at once with this message."""


def _duration(world: World, span: Span, op: OpState) -> float:
    return uniform(span, world.seed, "op", op.cluster, op.key)


def _node(world: World, cluster: str, name: str) -> NodeState:
    node = world.nodes[cluster].get(name)
    if node is None or node.removing:
        raise Refused(f"node {name} not found")
    return node


def begin(world: World, op: OpState) -> float:
    """Start ``op``; returns its duration. Raises :class:`Refused`."""
    action = op.action
    c = world.clusters[op.cluster]
    t = world.timings
    if isinstance(action, AddNode):
        return _begin_add_node(world, op, action)
    if isinstance(action, RemoveNode):
        node = _node(world, op.cluster, action.node)
        node.removing = True
        world.set_unschedulable(node, True)
        world.node_down(node, containers_survive=False)
        return _duration(world, t.node_removal, op)
    if isinstance(action, EtcdSnapshot):
        if not c.etcd or not c.etcd_managed:
            raise Refused("this cluster's etcd is not run by pitstop: nothing to snapshot")
        return _duration(world, t.etcd_snapshot, op)
    if isinstance(action, EtcdRestore):
        if action.snapshot not in c.snapshots:
            raise Refused(f"no etcd snapshot named {action.snapshot!r}")
        c.restoring = True
        for m in c.etcd:
            m["up"] = False
        c.etcd_leader = None
        world.touch_cluster(op.cluster)
        return _duration(world, t.etcd_restore, op)
    return _begin_upgrade(world, op, action)


def _begin_add_node(world: World, op: OpState, action: AddNode) -> float:
    c = world.clusters[op.cluster]
    pool = c.pools.get(action.pool)
    if pool is None:
        raise Refused(f"no node pool {action.pool!r}")
    if action.name in world.nodes[op.cluster]:
        raise Refused(f"node {action.name} exists already")
    tpl = pool["template"]
    node = NodeState(
        cluster=op.cluster, name=action.name, pool=action.pool, kubelet=action.kubelet,
        kube_proxy=action.kubelet if tpl["kube_proxy"] else None, runtime=action.runtime,
        runtime_version=action.runtime_version, alloc_cpu=tpl["alloc_cpu"],
        alloc_mem=tpl["alloc_mem"], alloc_pods=tpl["alloc_pods"],
        orig_kubelet=tpl["orig_kubelet"], orig_runtime_version=tpl["orig_runtime_version"],
        origin=op.key, ready=False)
    world.nodes[op.cluster][node.name] = node
    world.touch_node(node)
    world.nodes_changed(op.cluster)
    world.log(op.cluster, "sim", "node-added", node.name, detail=f"pool {action.pool}")
    world.faults.never_ready(op.cluster, node, "kubelet")  # a pool fault picks it now
    world.daemon_pods_for(node)
    return _duration(world, world.timings.node_provisioning, op)


def _begin_upgrade(world: World, op: OpState, action: UpgradeComponent) -> float:
    c = world.clusters[op.cluster]
    t = world.timings
    comp, target = action.component, action.target
    if comp in NODE_COMPONENTS:
        node = _node(world, op.cluster, target)
        if comp == "kube-proxy":
            if node.kube_proxy is None:
                raise Refused(f"no kube-proxy runs on node {target}")
            return _duration(world, t.kube_proxy_restart, op)
        if comp in RUNTIMES and comp != node.runtime:
            raise Refused(f"node {target} runs {node.runtime}, not {comp}; changing the runtime "
                          "in place is not supported: replace the node")
        world.faults.never_ready(op.cluster, node, comp)  # a pool fault picks it now
        if comp in RUNTIMES:
            world.faults.runtime_failure(op.cluster, node)
        world.node_busy(op.cluster, target).add(op.key)
        world.node_down(node, containers_survive=comp in ("kubelet", "containerd"))
        return _duration(world, t.node_restart, op)
    if comp == "kube-apiserver":
        if target not in c.apiservers:
            raise Refused(f"no kube-apiserver instance {target!r}")
        c.apiservers[target]["up"] = False
        world.touch_cluster(op.cluster)
        return _duration(world, t.apiserver_restart, op)
    if comp in CONTROLLERS:
        instances: dict[str, str] = getattr(c, CONTROLLERS[comp])
        if target not in instances and target != comp:
            raise Refused(f"no {comp} instance {target!r}")
        return _duration(world, t.controller_restart, op)
    if comp == "etcd":
        member = next((m for m in c.etcd if m["name"] == target), None)
        if member is None or not c.etcd_managed:
            raise Refused(f"no etcd member {target!r} run by pitstop")
        member["up"] = False
        if c.etcd_leader == target:
            c.etcd_leader = next((m["name"] for m in c.etcd if m["up"]), None)
        world.touch_cluster(op.cluster)
        return _duration(world, t.etcd_member_restart, op)
    if comp == "control-plane":
        if target != op.cluster:
            raise Refused(f"a managed control-plane upgrade targets the cluster ({op.cluster})")
        return _duration(world, t.managed_control_plane, op)
    if target in c.addons:
        return _duration(world, t.addon_rollout, op)
    raise Refused(f"unknown component {comp!r} for target {target!r}")


def finish(world: World, op: OpState) -> tuple[OperationState, str]:
    """End ``op`` at the current virtual time; returns its final state and message."""
    action = op.action
    c = world.clusters[op.cluster]
    ok = (OperationState.SUCCEEDED, "")
    if isinstance(action, AddNode):
        node = world.nodes[op.cluster].get(action.name)
        if node is None:
            return OperationState.FAILED, f"node {action.name} was removed while provisioning"
        if world.faults.never_ready(op.cluster, node, "kubelet"):
            node.never_ready = True
            world.touch_node(node)
        world.node_up(node)
        return ok
    if isinstance(action, RemoveNode):
        node = world.nodes[op.cluster].get(action.node)
        if node is not None:
            world.remove_node(node)
        return ok
    if isinstance(action, EtcdSnapshot):
        if not c.etcd_quorum():
            return OperationState.FAILED, "etcd has no quorum: snapshot failed"
        version = min((m["version"] for m in c.etcd), key=parse_version)
        c.snapshots[action.name] = {"version": version, "time": world.now}
        world.touch_cluster(op.cluster)
        return ok
    if isinstance(action, EtcdRestore):
        for m in c.etcd:
            m["version"] = action.version
            m["up"] = True
        c.etcd_leader = c.etcd[0]["name"] if c.etcd else None
        c.restoring = False
        world.touch_cluster(op.cluster)
        return ok
    return _finish_upgrade(world, op, action)


def _finish_upgrade(world: World, op: OpState, action: UpgradeComponent
                    ) -> tuple[OperationState, str]:
    c = world.clusters[op.cluster]
    comp, target, version = action.component, action.target, action.version
    ok = (OperationState.SUCCEEDED, "")
    if comp in NODE_COMPONENTS:
        busy = world.node_busy(op.cluster, target)
        busy.discard(op.key)
        node = world.nodes[op.cluster].get(target)
        if node is None:
            return OperationState.FAILED, f"node {target} was removed during the upgrade"
        if comp == "kube-proxy":
            node.kube_proxy = version
            world.touch_node(node)
            return ok
        failure = world.faults.runtime_failure(op.cluster, node) if comp in RUNTIMES else None
        if failure is None:
            if comp == "kubelet":
                node.kubelet = version
            else:
                node.runtime_version = version
            if world.faults.never_ready(op.cluster, node, comp):
                node.never_ready = True
            world.touch_node(node)
        if not busy:
            world.node_up(node)
        return (OperationState.FAILED, failure) if failure else ok
    if comp == "kube-apiserver":
        c.apiservers[target] = {"version": version, "up": True}
    elif comp in CONTROLLERS:
        instances: dict[str, str] = getattr(c, CONTROLLERS[comp])
        for name in [target] if target in instances else list(instances):
            instances[name] = version
    elif comp == "etcd":
        for m in c.etcd:
            if m["name"] == target:
                m["version"] = version
                m["up"] = True
        if c.etcd_leader is None:
            c.etcd_leader = next((m["name"] for m in c.etcd if m["up"]), None)
    elif comp == "control-plane":
        for a in c.apiservers.values():
            a["version"] = version
        for attr in CONTROLLERS.values():
            instances = getattr(c, attr)
            for name in instances:
                instances[name] = version
    else:
        c.addons[target] = version
        world.touch_cluster(op.cluster)
        return ok
    c.control_plane_steps.append(comp)
    world.touch_cluster(op.cluster)
    return ok
